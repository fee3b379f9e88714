"""The semantic cache's bound on local AWS (moto): what a scope holds in memory and what the bound costs.

One process stores ``entries`` prompts into one scope bounded to ``bound``; a second process (a fresh store) then
loads the scope. Printed: the entries left in the table; the memory the loaded scope holds per entry (tracemalloc:
vector, prompt and ids, and the index matrix it returned) beside the size of the response it no longer loads;
DynamoDB requests per store once the scope is full (the put, the refresh and the eviction); and the time to fetch
a hit's response. Timings are moto's, not DynamoDB's.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
from typing import Any

DIMENSIONS = 384  # all-MiniLM-L6-v2
SCOPE = "bench:scope"


class CountingDynamoDB:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests = 0

    def __getattr__(self, operation: str) -> Any:
        method = getattr(self.client, operation)

        def call(**kwargs: Any) -> Any:
            self.requests += 1
            return method(**kwargs)

        return call


def _store(stack: Any, bound: int, dynamodb: Any) -> Any:
    from ctxgate.adapters.dynamodb_cache import DynamoCacheStore
    from ctxgate.adapters.s3_blobs import S3BlobStore

    return DynamoCacheStore(
        stack.physical["CacheTable"],
        S3BlobStore(stack.physical["BlobBucket"]),
        offload_threshold_bytes=65536,
        max_entries_per_scope=bound,
        refresh_seconds=0,
        dynamodb=dynamodb,
    )


def _held_since(baseline: Any, snapshot: Any) -> int:
    """Bytes allocated since ``baseline`` and still alive, leaving out moto's emulated table and the AWS SDK's
    caches (in Lambda they are a remote service and a fixed cost)."""
    outside = [tracemalloc.Filter(False, f"*/{name}/*") for name in ("moto", "botocore", "boto3", "werkzeug")]
    kept = snapshot.filter_traces(outside).compare_to(baseline.filter_traces(outside), "filename")
    return sum(stat.size_diff for stat in kept)


def run(entries: int, bound: int, response_bytes: int) -> dict[str, Any]:
    import boto3
    import numpy as np
    from ctxgate.cache.models import CachedResponse, SemanticEntry
    from ctxgate.messages import Completion, Message, Usage

    from benchmarks.local_aws import local_aws

    rng = np.random.default_rng(7)
    started = time.perf_counter()
    with local_aws() as stack:
        counting = CountingDynamoDB(boto3.session.Session(region_name="us-east-1").client("dynamodb"))
        writer = _store(stack, bound, counting)
        requests_at_bound: list[int] = []
        response_size = 0
        for index in range(entries):
            vector = rng.standard_normal(DIMENSIONS).astype(np.float32)
            now = time.time()
            response = CachedResponse(
                completion=Completion(message=Message(role="assistant", content="x" * response_bytes)),
                usage=Usage(prompt_tokens=20, completion_tokens=response_bytes // 4),
                served_by="echo",
                created_at=now,
            )
            response_size = len(response.model_dump_json())
            entry = SemanticEntry(
                id=f"{index:08d}",
                prompt=f"question number {index} about the benchmark",
                answer_id=str(index),
                served_by="echo",
                created_at=now,
                expires_at=int(now) + 3600,
            )
            before = counting.requests
            writer.put_semantic("bench", SCOPE, entry, response, vector / np.linalg.norm(vector))
            if index >= bound:
                requests_at_bound.append(counting.requests - before)
        table = boto3.session.Session(region_name="us-east-1").client("dynamodb")
        pages = table.get_paginator("scan").paginate(TableName=stack.physical["CacheTable"], Select="COUNT")
        stored = sum(page["Count"] for page in pages)  # a scan page stops at 1 MB

        reader = _store(stack, bound, table)
        tracemalloc.start()
        baseline = tracemalloc.take_snapshot()
        index_view = reader.semantic_index("bench", SCOPE)
        gc.collect()  # what stays allocated is what the process holds for the scope (and the index it returned)
        held = _held_since(baseline, tracemalloc.take_snapshot())
        tracemalloc.stop()
        loaded = len(index_view.entries)
        fetches = []
        for entry in index_view.entries[: min(50, loaded)]:
            begin = time.perf_counter()
            reader.semantic_response("bench", SCOPE, entry)
            fetches.append((time.perf_counter() - begin) * 1000)
    return {
        "entries_written": entries,
        "bound": bound,
        "entries_stored": stored,
        "entries_loaded": loaded,
        "memory_bytes_per_entry": round(held / max(1, loaded)),
        "scope_memory_bytes": held,
        "response_bytes_not_held_per_entry": response_size,
        "requests_per_put_at_bound": statistics.median(requests_at_bound) if requests_at_bound else None,
        "hit_fetch_p50_ms": round(statistics.median(fetches), 2) if fetches else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(*, entries: int, bound: int, response_bytes: int, json_output: bool) -> int:
    row = run(entries, bound, response_bytes)
    if json_output:
        print(json.dumps(row))
    else:
        for key, value in row.items():
            print(f"{key:36} {value}")
    return 0
