"""``ctxgate bench cache``: GPTCache's similarity protocol through the real response cache.

Every ``origin`` is stored as a deterministic single-prompt request whose answer is the pair's index; then every
``similar`` is looked up. A hit is correct if it returns the pair's own index, wrong otherwise. The cache runs on
DynamoDB/S3 (moto) with the local MiniLM embedder, exactly as the chat path uses it.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

SWEEP = (0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
MODEL = "echo"


def _cache(threshold: float, capacity: int) -> Any:
    """A cache whose scope holds ``capacity`` entries: every stored pair stays (this measures verification, not
    eviction)."""
    from ctxgate.adapters.dynamodb_cache import DynamoCacheStore
    from ctxgate.adapters.s3_blobs import S3BlobStore
    from ctxgate.cache.service import ResponseCache
    from ctxgate.embeddings import get_embedder
    from ctxgate.settings import get_settings

    settings = get_settings()
    store = DynamoCacheStore(
        settings.cache_table_name,
        S3BlobStore(settings.bucket_name),
        offload_threshold_bytes=settings.offload_threshold_bytes,
        max_entries_per_scope=max(capacity, settings.cache_max_entries_per_scope),
    )
    return ResponseCache(store, lambda: get_embedder("local"), threshold=threshold, default_ttl=3600)


def _query(cache: Any, pairs: list[dict[str, str]], threshold: float) -> dict[str, Any]:
    from ctxgate.cache.keys import CacheControl
    from ctxgate.embeddings import get_embedder
    from ctxgate.messages import GenerationParams, Message

    get_embedder("local").forget()  # every pass pays for embedding its queries
    params = GenerationParams(temperature=0)
    correct = wrong = 0
    timings: list[float] = []
    for index, pair in enumerate(pairs):
        started = time.perf_counter()
        lookup = cache.lookup(
            "bench",
            MODEL,
            [Message(role="user", content=pair["similar"])],
            params,
            control=CacheControl(),
            threshold=threshold,
        )
        timings.append((time.perf_counter() - started) * 1000)
        if lookup.response is not None:
            if lookup.response.completion.message.content == str(index):
                correct += 1
            else:
                wrong += 1
    timings.sort()
    return {
        "pairs": len(pairs),
        "correct_hits": correct,
        "wrong_hits": wrong,
        "misses": len(pairs) - correct - wrong,
        "precision": round(correct / max(1, correct + wrong), 4),
        "hit_rate": round(correct / max(1, len(pairs)), 4),
        "threshold": threshold,
        "lookup_p50_ms": round(statistics.median(timings), 2),
        "lookup_p99_ms": round(timings[min(len(timings) - 1, int(len(timings) * 0.99))], 2),
    }


def run(dataset: Path, threshold: float | None, sweep: bool) -> list[dict[str, Any]]:
    from ctxgate.cache.keys import CacheControl
    from ctxgate.messages import Completion, GenerationParams, Message, Usage
    from ctxgate.settings import get_settings

    from benchmarks.local_aws import local_aws

    pairs = json.loads(dataset.read_text())
    started = time.perf_counter()
    with local_aws():
        default = threshold if threshold is not None else get_settings().semantic_threshold
        cache = _cache(default, len(pairs))
        params = GenerationParams(temperature=0)
        for index, pair in enumerate(pairs):
            messages = [Message(role="user", content=pair["origin"])]
            # no-cache: insert even when an identical origin is already stored (the dataset repeats some origins)
            lookup = cache.lookup("bench", MODEL, messages, params, control=CacheControl(no_cache=True))
            answer = Completion(message=Message(role="assistant", content=str(index)))
            cache.remember("bench", lookup, answer, Usage(prompt_tokens=20, completion_tokens=1), MODEL)
        rows = [_query(cache, pairs, default)]
        rows[0]["seconds"] = round(time.perf_counter() - started, 1)
        if sweep:
            for value in SWEEP:
                if value != default:
                    rows.append({**_query(cache, pairs, value), "seconds": None})
    return rows


def main(*, dataset: Path, threshold: float | None, sweep: bool, json_output: bool) -> int:
    rows = run(dataset, threshold, sweep)
    if json_output:
        if sweep:
            for row in sorted(rows, key=lambda r: r["threshold"]):
                print(json.dumps(row))
        else:
            print(json.dumps(rows[0]))
        return 0
    print(f"ctxgate bench cache: {dataset.name}")
    print(
        f"{'threshold':>9} {'correct':>8} {'wrong':>6} {'misses':>7} {'precision':>10} {'hit_rate':>9} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    for row in sorted(rows, key=lambda r: r["threshold"]):
        print(
            f"{row['threshold']:>9} {row['correct_hits']:>8} {row['wrong_hits']:>6} {row['misses']:>7} "
            f"{row['precision']:>10} {row['hit_rate']:>9} {row['lookup_p50_ms']:>7} {row['lookup_p99_ms']:>7}"
        )
    print(f"seconds: {rows[0]['seconds']}")
    return 0
