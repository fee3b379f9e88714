"""The semantic cache's bound on moto (tables from template.yaml): least-recently-used eviction from the table,
vectors-only memory with the response fetched on a hit, and entries another process evicted."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from ctxgate.adapters.dynamodb_cache import DynamoCacheStore
from ctxgate.adapters.s3_blobs import S3BlobStore
from ctxgate.cache.models import CachedResponse, SemanticEntry
from ctxgate.messages import Completion, Message, Usage

SCOPE = "local:fingerprint"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingDynamoDB:
    """The real (moto) client, recording each call's operation and its response."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def __getattr__(self, operation: str) -> Any:
        method = getattr(self.client, operation)

        def call(**kwargs: Any) -> Any:
            response = method(**kwargs)
            self.calls.append((operation, kwargs, response))
            return response

        return call


def vector(index: int) -> np.ndarray:
    row = np.zeros(8, dtype=np.float32)
    row[index % 8] = 1.0
    return row


def entry(clock: Clock, index: int) -> tuple[SemanticEntry, CachedResponse]:
    response = CachedResponse(
        completion=Completion(message=Message(role="assistant", content=f"answer {index}")),
        usage=Usage(prompt_tokens=5, completion_tokens=2),
        served_by="echo",
        created_at=clock(),
    )
    semantic = SemanticEntry(
        id=f"e{index}",
        prompt=f"question {index}",
        answer_id=f"a{index}",
        served_by="echo",
        created_at=clock(),
        expires_at=int(clock()) + 3600,
    )
    return semantic, response


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_store(aws, clock):
    def make(capacity: int = 3, dynamodb: Any = None) -> DynamoCacheStore:
        return DynamoCacheStore(
            aws.physical["CacheTable"],
            S3BlobStore(aws.bucket),
            offload_threshold_bytes=65536,
            max_entries_per_scope=capacity,
            refresh_seconds=0,
            last_use_resolution_ms=0,
            dynamodb=dynamodb or aws.session.client("dynamodb"),
            clock=clock,
        )

    return make


def fill(store: DynamoCacheStore, clock: Clock, indices: range) -> dict[int, SemanticEntry]:
    entries = {}
    for index in indices:
        semantic, response = entry(clock, index)
        store.put_semantic("acme", SCOPE, semantic, response, vector(index))
        entries[index] = semantic
        clock.advance(1)
    return entries


def stored_ids(aws) -> set[str]:
    items = aws.session.client("dynamodb").scan(TableName=aws.physical["CacheTable"])["Items"]
    return {i["sk"]["S"].split("#", 1)[1] for i in items if i["pk"]["S"].startswith("S#acme#")}


def test_a_full_scope_evicts_its_least_recently_used_entry_from_the_table(aws, clock, make_store):
    # GIVEN a scope bounded to three entries, of which the oldest was used since
    store = make_store(capacity=3)
    entries = fill(store, clock, range(3))
    assert store.semantic_response("acme", SCOPE, entries[0]) is not None
    clock.advance(1)
    # WHEN a fourth entry is stored
    fill(store, clock, range(3, 4))
    # THEN the least recently used (e1, never used) is gone from DynamoDB and from memory; e0 stays
    assert stored_ids(aws) == {"e0", "e2", "e3"}
    assert {e.id for e in store.semantic_index("acme", SCOPE).entries} == {"e0", "e2", "e3"}


def test_the_bound_holds_however_many_entries_are_stored(aws, clock, make_store):
    store = make_store(capacity=5)
    fill(store, clock, range(40))
    assert stored_ids(aws) == {f"e{i}" for i in range(35, 40)}


def test_memory_holds_vectors_and_prompts_and_a_hit_fetches_its_response(aws, clock, make_store):
    # GIVEN entries written by one process
    fill(make_store(capacity=10), clock, range(4))
    recorder = RecordingDynamoDB(aws.session.client("dynamodb"))
    reader = make_store(capacity=10, dynamodb=recorder)
    # WHEN another process loads the scope
    index = reader.semantic_index("acme", SCOPE)
    # THEN it read every entry's vector and prompt, and no response
    assert [e.prompt for e in index.entries] == [f"question {i}" for i in range(4)] and index.vectors.shape == (4, 8)
    read = [item for op, _, response in recorder.calls if op == "query" for item in response["Items"]]
    assert len(read) == 4 and not any("response" in item or "body_key" in item for item in read)
    # AND a hit fetches exactly the chosen entry's response, with one request
    recorder.calls.clear()
    response = reader.semantic_response("acme", SCOPE, index.entries[2])
    assert response is not None and response.completion.message.content == "answer 2"
    assert [(op, kwargs["Key"]["sk"]["S"].endswith("#e2")) for op, kwargs, _ in recorder.calls] == [
        ("update_item", True)
    ]


def test_an_entry_another_process_evicted_is_a_miss_not_a_stale_hit(aws, clock, make_store):
    # GIVEN two processes that both know e0..e2
    first, second = make_store(capacity=3), make_store(capacity=3)
    entries = fill(first, clock, range(3))
    stale = second.semantic_index("acme", SCOPE).entries
    # WHEN the first evicts e0 to make room
    fill(first, clock, range(3, 4))
    # THEN the second, choosing e0 from its memory, gets no response and forgets it
    assert second.semantic_response("acme", SCOPE, next(e for e in stale if e.id == "e0")) is None
    assert "e0" not in {e.id for e in second.semantic_index("acme", SCOPE).entries}
    assert second.semantic_response("acme", SCOPE, entries[1]) is not None


def test_an_entry_used_by_another_process_is_not_evicted_for_a_stale_reading(aws, clock, make_store):
    # GIVEN a writer that loaded e0..e2, and a reader that used e0 since
    writer, reader = make_store(capacity=3), make_store(capacity=3)
    entries = fill(writer, clock, range(3))
    reader.semantic_index("acme", SCOPE)
    assert reader.semantic_response("acme", SCOPE, entries[0]) is not None
    clock.advance(1)
    # WHEN the writer (which believes e0 is the least recently used) must evict
    fill(writer, clock, range(3, 4))
    # THEN e1 goes, not the recently used e0
    assert stored_ids(aws) == {"e0", "e2", "e3"}


def test_evicting_an_offloaded_entry_deletes_its_s3_body(aws, clock, make_store):
    store = make_store(capacity=1)
    semantic, response = entry(clock, 0)
    big = response.model_copy(
        update={"completion": Completion(message=Message(role="assistant", content="x" * 90_000))}
    )
    store.put_semantic("acme", SCOPE, semantic, big, vector(0))
    assert any("/cache/" in key for key in aws.object_keys())
    clock.advance(1)
    fill(store, clock, range(1, 2))
    assert not any("/cache/" in key for key in aws.object_keys()) and stored_ids(aws) == {"e1"}
