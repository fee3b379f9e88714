"""``ctxgate bench contention``: many writers on few sessions through ``ctxgate local``, against a flaky upstream.

``--writers`` threads each send ``--turns`` requests with the official openai SDK (no client retries), writer ``i``
on session ``i mod --sessions``; half the sessions have a 1,024-token budget, so compaction runs during the race.
A share (``--fault-rate``) of upstream calls fail (500, 503, 429 with Retry-After, dropped connections) or answer
slowly (``benchmarks.flaky_upstream``). Afterwards every session is read back and checked against what the
clients were told:

- lost: a request answered 200 whose message is not stored once, followed by the reply;
- duplicated: a message stored more than once;
- orphaned: a message stored although its request failed.

Reported: the success rate and the 409s, p50/p99 latency, and the upstream's successful completions per stored
turn (1.0 means every paid call became a turn). Summaries use the offline ``echo`` model so they cost the
upstream nothing.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from benchmarks.overhead import BENCH_KEY, ROOT, _free_port, _stop, _wait_for_port, local_gateway, percentile

MODEL = "flaky"


@contextmanager
def flaky_upstream(fault_rate: float, seed: int) -> Iterator[str]:
    """Yields the flaky upstream's base URL while its process runs."""
    port = _free_port()
    command = [sys.executable, "-m", "benchmarks.flaky_upstream", "--port", str(port)]
    command += ["--fault-rate", str(fault_rate), "--seed", str(seed)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(process)


@dataclass
class Outcome:
    session: str
    message: str
    status: int
    seconds: float


@dataclass
class Results:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def session_name(index: int) -> str:
    return f"contention-{index:03d}"


def writer(number: int, turns: int, sessions: int, base_url: str, results: Results) -> None:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=BENCH_KEY, max_retries=0, timeout=60)
    session = session_name(number % sessions)
    headers = {"X-Session-Id": session}
    if (number % sessions) % 2 == 1:
        headers["X-Ctxgate-Budget"] = "1024"
    for turn in range(turns):
        message = f"writer {number} turn {turn}: please remember item {number * 1000 + turn}"
        started = time.perf_counter()
        try:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": message}], extra_headers=headers
            )
            status = 200
        except openai.APIStatusError as error:
            status = error.status_code
        except openai.APIConnectionError:
            status = 0
        results.add(Outcome(session, message, status, time.perf_counter() - started))


def read_back(base_url: str, session: str) -> list[dict[str, Any]]:
    import httpx

    turns: list[dict[str, Any]] = []
    after = 0
    while True:
        page = httpx.get(
            f"{base_url}/sessions/{session}",
            params={"after": after, "limit": 1000},
            headers={"authorization": f"Bearer {BENCH_KEY}"},
            timeout=60,
        )
        if page.status_code == 404:
            return turns
        page.raise_for_status()
        body = page.json()
        turns.extend(body["turns"])
        if not body["has_more"]:
            return turns
        after = body["next_after"]


def check(outcomes: list[Outcome], stored: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Lost, duplicated and orphaned turns, from what clients were told and what every session holds."""
    counts: Counter[str] = Counter()
    answered: set[str] = set()
    for turns in stored.values():
        for i, turn in enumerate(turns):
            if turn["role"] == "user":
                counts[turn["content"]] += 1
                if i + 1 < len(turns) and turns[i + 1]["role"] == "assistant":
                    answered.add(turn["content"])
    succeeded = {o.message for o in outcomes if o.status == 200}
    failed = {o.message for o in outcomes if o.status != 200}
    return {
        "lost_turns": sum(1 for m in succeeded if counts[m] == 0 or m not in answered),
        "duplicated_turns": sum(1 for count in counts.values() if count > 1),
        "orphaned_turns": sum(1 for m in failed if counts[m] > 0),
        "stored_turns": sum(counts.values()),
    }


def measure(writers: int, sessions: int, turns: int, fault_rate: float, seed: int) -> dict[str, Any]:
    import httpx

    models = [
        {"name": MODEL, "provider": "openai", "upstream_model": "flaky-model", "base_url": None},
        {"name": "echo", "provider": "echo", "upstream_model": "echo"},
    ]
    with flaky_upstream(fault_rate, seed) as upstream:
        models[0]["base_url"] = upstream
        args = ("--parameter", "SummarizerModel=echo")
        with local_gateway(upstream, models=models, args=args) as (base_url, _pid):
            results = Results()
            started = time.perf_counter()
            threads = [
                threading.Thread(target=writer, args=(n, turns, sessions, base_url, results), daemon=True)
                for n in range(writers)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            stored = {session_name(i): read_back(base_url, session_name(i)) for i in range(sessions)}
            upstream_stats = httpx.get(f"{upstream}/stats", timeout=10).json()
    outcomes = results.outcomes
    statuses = Counter(o.status for o in outcomes)
    latencies = [o.seconds for o in outcomes]
    integrity = check(outcomes, stored)
    ok = statuses.get(200, 0)
    return {
        "writers": writers,
        "sessions": sessions,
        "turns_per_writer": turns,
        "fault_rate": fault_rate,
        "requests": len(outcomes),
        "success_rate": round(ok / max(1, len(outcomes)), 4),
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "conflicts_409": statuses.get(409, 0),
        "latency_p50_s": round(percentile(latencies, 50), 3),
        "latency_p99_s": round(percentile(latencies, 99), 3),
        "upstream_completions": upstream_stats["completions"],
        "upstream_faults": {k: v for k, v in upstream_stats.items() if k != "completions"},
        "completions_per_stored_turn": round(upstream_stats["completions"] / max(1, integrity["stored_turns"]), 3),
        **integrity,
        "seconds": round(elapsed, 1),
    }


def main(*, writers: int, sessions: int, turns: int, fault_rate: float, seed: int, json_output: bool) -> int:
    result = measure(writers, sessions, turns, fault_rate, seed)
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"{result['requests']} requests from {writers} writers on {sessions} sessions, fault rate {fault_rate}")
    for key in (
        "success_rate",
        "conflicts_409",
        "latency_p50_s",
        "latency_p99_s",
        "completions_per_stored_turn",
        "lost_turns",
        "duplicated_turns",
        "orphaned_turns",
    ):
        print(f"  {key:28} {result[key]}")
    print(f"  status codes                 {result['status_counts']}")
    print(f"  upstream                     {result['upstream_completions']} completions, {result['upstream_faults']}")
    return 0 if math.isfinite(result["success_rate"]) else 1
