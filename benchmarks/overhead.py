"""``ctxgate bench overhead``: what ``ctxgate local`` adds over calling its upstream directly.

A mock OpenAI-compatible upstream (``benchmarks.mock_upstream``) and the real ``ctxgate local`` command run as two
processes of their own; the gateway serves one ``openai`` model whose ``base_url`` is the mock. Each client thread
alternates a direct request to the mock with the same request through the gateway, so both sides of every figure come
from one interleaved run on the same (shared, noisy) machine. The response cache is bypassed: requests are not
deterministic (no temperature 0, no seed) and say ``Cache-Control: no-cache, no-store``.

Reported per concurrency level: p50 and p99 latency of both sides, what the gateway adds (the difference), and the
gateway process's CPU time per request (user + system, all threads, from ``/proc/<pid>/stat``). That CPU includes the
gateway's background work (its SQS pollers), which weighs more per request the longer a level takes; so the idle rate
is measured too, and ``..._less_idle`` subtracts it. The goal: at one client, the added p50 is at most twice the CPU
the gateway spends on a request (less idle), i.e. the gateway adds no waiting of its own.
"""

from __future__ import annotations

import json
import math
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 2.0
MODEL = "mock"
UPSTREAM_MODEL = "mock-model"
WARMUP_REQUESTS = 20
IDLE_SECONDS = 3.0
STARTUP_SECONDS = 90.0
PROMPT = [{"role": "user", "content": "Say hello."}]
BENCH_KEY = "ctg_overhead-benchmark-key"
# The key is registered with `ctxgate local --api-key`: requests are authenticated as deployed (the authorizer runs).
HEADERS = {"cache-control": "no-cache, no-store", "authorization": f"Bearer {BENCH_KEY}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the mock upstream exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the mock upstream did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of process ``pid``, so far (Linux ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces; the fields after it do not
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def mock_upstream() -> Iterator[str]:
    """Yields the mock's base URL (``http://127.0.0.1:P/v1``) while its process runs."""
    port = _free_port()
    command = [sys.executable, "-m", "benchmarks.mock_upstream", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


@contextmanager
def local_gateway(
    upstream_url: str, *, models: list[dict[str, Any]] | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[str, int]]:
    """Yields (base URL, pid) of a ``ctxgate local`` process serving model ``mock`` from ``upstream_url`` (or
    ``models``, a models file's entries), with ``BENCH_KEY`` registered and ``args`` added to its command line."""
    with tempfile.TemporaryDirectory(prefix="ctxgate-bench-") as directory:
        config = Path(directory) / "models.yaml"
        model = {"name": MODEL, "provider": "openai", "upstream_model": UPSTREAM_MODEL, "base_url": upstream_url}
        config.write_text(yaml.safe_dump({"models": models or [model]}))
        command = [
            *(sys.executable, "-m", "ctxgate.cli", "local", "--port", str(_free_port()), "--config", str(config)),
            *("--api-key", f"{BENCH_KEY}:bench", *args),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # it runs its own moto
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        output: list[str] = []

        def drain() -> None:  # the gateway logs every request; an unread pipe would block it
            assert process.stdout is not None
            for line in process.stdout:
                if len(output) < 200:
                    output.append(line)
                lines.put(line)

        threading.Thread(target=drain, name="gateway-output", daemon=True).start()
        try:
            yield _gateway_url(lines, output, process), process.pid
        finally:
            _stop(process)


def _gateway_url(lines: queue.Queue[str], output: list[str], process: subprocess.Popen[Any]) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise RuntimeError("ctxgate local did not start:\n" + "".join(output)) from None
        if line.startswith("ctxgate local gateway:"):
            return line.split(": ", 1)[1].strip()
        if process.poll() is not None and lines.empty():
            raise RuntimeError("ctxgate local exited:\n" + "".join(output))


@dataclass
class Samples:
    direct: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)


def _timed_post(client: Any, url: str, model: str) -> float:
    started = time.perf_counter()
    response = client.post(url, json={"model": model, "messages": PROMPT}, headers=HEADERS)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"POST {url} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def _client_thread(worker: int, count: int, direct_url: str, gateway_url: str, samples: Samples) -> None:
    """``count`` pairs of requests on keep-alive connections; which side goes first alternates."""
    import httpx

    with httpx.Client(timeout=60) as client:
        for i in range(count):
            for side in ("direct", "gateway") if (worker + i) % 2 == 0 else ("gateway", "direct"):
                if side == "direct":
                    samples.direct.append(_timed_post(client, f"{direct_url}/chat/completions", UPSTREAM_MODEL))
                else:
                    samples.gateway.append(_timed_post(client, f"{gateway_url}/chat/completions", MODEL))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def idle_cpu_ms_per_second(pid: int, seconds: float = IDLE_SECONDS) -> float:
    before, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) * 1000 / (time.perf_counter() - started)


def run_level(
    clients: int, requests: int, direct_url: str, gateway_url: str, gateway_pid: int, idle_ms_per_s: float
) -> dict[str, Any]:
    """``requests`` requests each way, spread over ``clients`` concurrent client threads."""
    samples = Samples()
    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    threads = [
        threading.Thread(target=_client_thread, args=(i, share, direct_url, gateway_url, samples), daemon=True)
        for i, share in enumerate(shares)
        if share
    ]
    cpu_before, started = cpu_seconds(gateway_pid), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu_ms = (cpu_seconds(gateway_pid) - cpu_before) * 1000
    idle_ms = idle_ms_per_s * (time.perf_counter() - started)
    served = len(samples.gateway)
    figures = {
        f"{side}_{name}_ms": round(percentile(values, q) * 1000, 2)
        for side, values in (("direct", samples.direct), ("gateway", samples.gateway))
        for name, q in (("p50", 50), ("p99", 99))
    }
    added_p50 = figures["gateway_p50_ms"] - figures["direct_p50_ms"]
    return {
        "clients": clients,
        "requests": len(samples.gateway),
        **figures,
        "added_p50_ms": round(added_p50, 2),
        "added_p99_ms": round(figures["gateway_p99_ms"] - figures["direct_p99_ms"], 2),
        "gateway_cpu_ms_per_request": round(cpu_ms / served, 2),
        "gateway_cpu_ms_per_request_less_idle": round(max(0.0, cpu_ms - idle_ms) / served, 2),
        "added_p50_to_cpu_ratio": round(added_p50 * served / (cpu_ms - idle_ms), 2) if cpu_ms > idle_ms else None,
    }


def measure(requests: int, concurrency: list[int]) -> dict[str, Any]:
    started = time.perf_counter()
    with mock_upstream() as direct_url, local_gateway(direct_url) as (gateway_url, gateway_pid):
        warmup = Samples()
        _client_thread(0, WARMUP_REQUESTS, direct_url, gateway_url, warmup)  # imports, connections, moto's first calls
        idle = idle_cpu_ms_per_second(gateway_pid)
        levels = [run_level(c, requests, direct_url, gateway_url, gateway_pid, idle) for c in concurrency]
    single = next((level for level in levels if level["clients"] == 1), None)
    ratio = None if single is None else single["added_p50_to_cpu_ratio"]
    return {
        "requests": requests,
        "gateway_idle_cpu_ms_per_second": round(idle, 2),
        "levels": levels,
        "goal_ratio": GOAL_RATIO,
        "within_goal": None if ratio is None else ratio <= GOAL_RATIO,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(*, json_output: bool, requests: int, clients: list[int]) -> int:
    if not Path("/proc/self/stat").exists():
        print("ctxgate bench overhead reads the gateway's CPU time from /proc (Linux only)", file=sys.stderr)
        return 2
    if requests < 1 or min(clients) < 1:
        print("ctxgate bench overhead: --requests and --clients must be at least 1", file=sys.stderr)
        return 2
    result = measure(requests, clients)
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"ctxgate bench overhead: {requests} requests each way per level, direct and via `ctxgate local` interleaved")
    print(
        f"{'clients':>7} {'direct p50':>10} {'p99':>7} {'gateway p50':>11} {'p99':>7} {'added p50':>9} {'p99':>7} "
        f"{'cpu/req':>7} {'less idle':>9} {'added/cpu':>9}   (ms)"
    )
    for row in result["levels"]:
        print(
            f"{row['clients']:>7} {row['direct_p50_ms']:>10} {row['direct_p99_ms']:>7} {row['gateway_p50_ms']:>11} "
            f"{row['gateway_p99_ms']:>7} {row['added_p50_ms']:>9} {row['added_p99_ms']:>7} "
            f"{row['gateway_cpu_ms_per_request']:>7} {row['gateway_cpu_ms_per_request_less_idle']:>9} "
            f"{row['added_p50_to_cpu_ratio']!s:>9}"
        )
    print(f"gateway idle CPU: {result['gateway_idle_cpu_ms_per_second']} ms per second")
    verdict = {True: "met", False: "NOT met", None: "not measured (no 1-client level)"}[result["within_goal"]]
    print(f"goal (1 client: added p50 <= {GOAL_RATIO:g} x gateway CPU per request, less idle): {verdict}")
    print(f"seconds: {result['seconds']}")
    return 0
