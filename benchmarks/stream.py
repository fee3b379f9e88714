"""``ctxgate bench stream``: time to first token and chunk pacing, direct and through ``ctxgate local``.

A local upstream (``benchmarks.stream_upstream``, its own process) streams ``--chunks`` chunks, one every
``--interval-ms``. The real ``ctxgate local`` command serves it as model ``mock`` (as in ``ctxgate bench overhead``).
One client sends the same streamed request three ways, interleaved in one run (the order rotates every round):
``direct`` to the upstream, through the gateway ``stateless``, and ``stateful`` (a fresh ``X-Session-Id`` each
time, so every request is a session's first turn and is stored). The response cache is bypassed
(``Cache-Control: no-cache, no-store``).

For each request, as the client sees it on the wire (every network read timed as it returns):

- time to first token (TTFT): from sending the request to the read that carried the first content delta;
- the gaps between consecutive reads carrying content, and how many of the upstream's chunks arrived as reads of
  their own ("separate arrivals": a read carrying two chunks means the path coalesced them);
- total time, to the end of the body.

The gateway's CPU per request is read from ``/proc/<pid>/stat`` around each gateway request, less the gateway's
idle rate (its background pollers) over that time. The checks, from issue 11's "Done when", at p50 at one client:
gateway TTFT <= direct TTFT + 2 x the gateway's CPU per request, and >= 95% of the upstream's chunks seen as
separate arrivals.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.overhead import (
    BENCH_KEY,
    MODEL,
    ROOT,
    UPSTREAM_MODEL,
    _free_port,
    _stop,
    _wait_for_port,
    cpu_seconds,
    idle_cpu_ms_per_second,
    local_gateway,
    percentile,
)

MODES = ("direct", "stateless", "stateful")
WARMUP_ROUNDS = 3
TTFT_CPU_RATIO = 2.0
SEPARATE_ARRIVALS_GOAL = 0.95
PROMPT = [{"role": "user", "content": "Stream a long answer."}]


@dataclass
class Run:
    """One streamed request as the client saw it."""

    ttft: float
    total: float
    gaps: list[float]
    content_reads: int
    content_chunks: int
    cpu_ms: float | None = None


@dataclass
class Samples:
    runs: dict[str, list[Run]] = field(default_factory=lambda: {mode: [] for mode in MODES})


@contextmanager
def stream_upstream(chunks: int, interval_ms: float) -> Iterator[str]:
    port = _free_port()
    command = [
        *(sys.executable, "-m", "benchmarks.stream_upstream", "--port", str(port)),
        *("--chunks", str(chunks), "--interval-ms", str(interval_ms)),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


def timed_stream(client: Any, url: str, model: str, headers: dict[str, str]) -> Run:
    """POST a streamed request and time every network read of its body."""
    body = {"model": model, "messages": PROMPT, "stream": True}
    started = time.perf_counter()
    arrivals: list[float] = []
    chunks = 0
    with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code != 200:
            raise RuntimeError(f"POST {url} answered {response.status_code}: {response.read()[:300]!r}")
        for read in response.iter_raw():
            carried = read.count(b'"content":"') - read.count(b'"content":""')
            if carried > 0:
                arrivals.append(time.perf_counter())
                chunks += carried
    total = time.perf_counter() - started
    if not arrivals:
        raise RuntimeError(f"POST {url}: no content arrived")
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    return Run(arrivals[0] - started, total, gaps, len(arrivals), chunks)


def one_round(client: Any, index: int, direct_url: str, gateway_url: str, gateway_pid: int, idle: float) -> dict:
    runs: dict[str, Run] = {}
    order = MODES[index % 3 :] + MODES[: index % 3]
    for mode in order:
        if mode == "direct":
            runs[mode] = timed_stream(client, f"{direct_url}/chat/completions", UPSTREAM_MODEL, {})
            continue
        headers = {"cache-control": "no-cache, no-store", "authorization": f"Bearer {BENCH_KEY}"}
        if mode == "stateful":
            headers["x-session-id"] = f"bench-{uuid.uuid4().hex[:12]}"
        cpu_before, started = cpu_seconds(gateway_pid), time.perf_counter()
        run = timed_stream(client, f"{gateway_url}/chat/completions", MODEL, headers)
        elapsed = time.perf_counter() - started
        run.cpu_ms = max(0.0, (cpu_seconds(gateway_pid) - cpu_before) * 1000 - idle * elapsed)
        runs[mode] = run
    return runs


def summary(runs: list[Run], chunks: int) -> dict[str, Any]:
    gaps = [gap for run in runs for gap in run.gaps]
    separate = sum(run.content_reads for run in runs) / max(1, sum(run.content_chunks for run in runs))
    figures: dict[str, Any] = {
        "ttft_p50_ms": round(percentile([r.ttft for r in runs], 50) * 1000, 2),
        "ttft_p99_ms": round(percentile([r.ttft for r in runs], 99) * 1000, 2),
        "gap_p50_ms": round(percentile(gaps, 50) * 1000, 2),
        "gap_p99_ms": round(percentile(gaps, 99) * 1000, 2),
        "total_p50_ms": round(percentile([r.total for r in runs], 50) * 1000, 2),
        "chunks_per_request": round(sum(r.content_chunks for r in runs) / len(runs), 1),
        "separate_arrivals": round(separate, 4),
        "complete": all(r.content_chunks == chunks for r in runs),
    }
    cpu = [r.cpu_ms for r in runs if r.cpu_ms is not None]
    if cpu:
        figures["cpu_ms_per_request_p50"] = round(percentile(cpu, 50), 2)
    return figures


def measure(requests: int, chunks: int, interval_ms: float) -> dict[str, Any]:
    import httpx

    started = time.perf_counter()
    samples = Samples()
    with (
        stream_upstream(chunks, interval_ms) as direct_url,
        local_gateway(direct_url) as (gateway_url, gateway_pid),
        httpx.Client(timeout=120) as client,
    ):
        for index in range(WARMUP_ROUNDS):  # imports, connections, moto's first calls
            one_round(client, index, direct_url, gateway_url, gateway_pid, 0.0)
        idle = idle_cpu_ms_per_second(gateway_pid)
        for index in range(requests):
            for mode, run in one_round(client, index, direct_url, gateway_url, gateway_pid, idle).items():
                samples.runs[mode].append(run)
    modes = {mode: summary(runs, chunks) for mode, runs in samples.runs.items()}
    direct_ttft = modes["direct"]["ttft_p50_ms"]
    checks = {}
    for mode in ("stateless", "stateful"):
        cpu = modes[mode]["cpu_ms_per_request_p50"]
        budget = direct_ttft + TTFT_CPU_RATIO * cpu
        checks[mode] = {
            "ttft_budget_ms": round(budget, 2),
            "ttft_within_budget": modes[mode]["ttft_p50_ms"] <= budget,
            "separate_arrivals_met": modes[mode]["separate_arrivals"] >= SEPARATE_ARRIVALS_GOAL,
        }
    return {
        "requests": requests,
        "chunks": chunks,
        "interval_ms": interval_ms,
        "gateway_idle_cpu_ms_per_second": round(idle, 2),
        "modes": modes,
        "checks": checks,
        "all_met": all(c["ttft_within_budget"] and c["separate_arrivals_met"] for c in checks.values()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(*, json_output: bool, requests: int, chunks: int, interval_ms: float) -> int:
    if requests < 1 or chunks < 2 or interval_ms <= 0:
        print("ctxgate bench stream: --requests >= 1, --chunks >= 2 and --interval-ms > 0", file=sys.stderr)
        return 2
    result = measure(requests, chunks, interval_ms)
    if json_output:
        print(json.dumps(result))
        return 0
    print(
        f"ctxgate bench stream: {requests} requests per mode, interleaved, one client; the upstream streams "
        f"{chunks} chunks, one every {interval_ms:g} ms"
    )
    print(
        f"{'mode':>9} {'ttft p50':>8} {'p99':>7} {'gap p50':>7} {'p99':>7} {'total p50':>9} {'cpu/req':>7} "
        f"{'separate':>8}   (ms)"
    )
    for mode, row in result["modes"].items():
        print(
            f"{mode:>9} {row['ttft_p50_ms']:>8} {row['ttft_p99_ms']:>7} {row['gap_p50_ms']:>7} {row['gap_p99_ms']:>7} "
            f"{row['total_p50_ms']:>9} {row.get('cpu_ms_per_request_p50', '-')!s:>7} {row['separate_arrivals']:>8.1%}"
        )
    for mode, check in result["checks"].items():
        ttft = "met" if check["ttft_within_budget"] else "NOT met"
        separate = "met" if check["separate_arrivals_met"] else "NOT met"
        print(
            f"{mode}: TTFT p50 {result['modes'][mode]['ttft_p50_ms']} ms <= direct "
            f"{result['modes']['direct']['ttft_p50_ms']} + {TTFT_CPU_RATIO:g} x cpu = {check['ttft_budget_ms']} ms: "
            f"{ttft}; "
            f">= {SEPARATE_ARRIVALS_GOAL:.0%} separate arrivals: {separate}"
        )
    print(f"gateway idle CPU: {result['gateway_idle_cpu_ms_per_second']} ms per second; seconds: {result['seconds']}")
    return 0
