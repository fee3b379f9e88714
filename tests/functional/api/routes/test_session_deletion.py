"""``DELETE /v1/sessions/{id}`` removes everything the session owns, in every table and the bucket, and a
compaction racing the delete (the real ``compact_context`` consumer) cannot bring anything back. On moto, with
every resource from template.yaml."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from ctxgate.bootstrap import chat_service

from tests.conftest import load_event, load_function
from tests.functional.api.routes.invocations import call, route_event

SESSION = "support-chat-42"  # the session of the sample events


@pytest.fixture
def small_world(aws, monkeypatch):
    monkeypatch.setenv("CTXGATE_OFFLOAD_THRESHOLD_BYTES", "300")  # long turns and cached answers go to S3
    monkeypatch.setenv("CTXGATE_EMBEDDINGS", "off")
    from ctxgate.bootstrap import reset

    reset()
    return aws


def send(api: ModuleType, context: Any, text: str) -> int:
    """One deterministic (so cached) turn on the sample session, with a 512-token budget (so it compacts)."""
    body = {
        "model": "echo",
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
    }
    event = load_event("chat_completion_stateful.json", body=json.dumps(body))
    event["headers"]["x-ctxgate-budget"] = "512"
    return call(api, context, event)[0]


def everything(aws) -> tuple[set[tuple[str, str]], set[str]]:
    """Every item of every DynamoDB table, as (table, its key as JSON), and every S3 object key."""
    ddb = aws.session.client("dynamodb")
    items: set[tuple[str, str]] = set()
    for table in ddb.list_tables()["TableNames"]:
        schema = [k["AttributeName"] for k in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            items.update((table, json.dumps([page_item[a] for a in schema])) for page_item in page["Items"])
    return items, set(aws.object_keys())


def of_session(aws, items: set[tuple[str, str]], objects: set[str]) -> tuple[set, set]:
    """What belongs to the session: its partition, every cache entry and index item (only its turns stored any
    here), its objects and the cached answers' bodies."""
    cache = aws.physical["CacheTable"]
    return {i for i in items if SESSION in i[1] or i[0] == cache}, {
        o for o in objects if SESSION in o or "/cache/" in o
    }


def fill(api: ModuleType, context: Any) -> None:
    for i in range(14):
        text = f"turn {i}: the quick brown fox jumps over the lazy dog near the riverbank at dawn. " + "x" * (
            300 if i % 5 == 0 else 0
        )
        assert send(api, context, text) == 200


def test_delete_removes_every_item_and_object_of_the_session(small_world, lambda_context):
    aws, api = small_world, load_function("api")
    # GIVEN a session with turns (some offloaded to S3), a pin, and cache entries its turns stored
    fill(api, lambda_context)
    call(api, lambda_context, route_event("POST", f"/v1/sessions/{SESSION}/pins", body={"content": "Be terse."}))
    items, objects = everything(aws)
    mine, my_objects = of_session(aws, items, objects)
    assert any("T#default#S#" in i[1] for i in mine), "the session's items exist"
    assert any('"O#default#' in i[1] for i in mine), "its turns stored cache entries, indexed by session"
    assert any("/turns/" in o for o in my_objects), "offloaded turn bodies exist"
    # WHEN the client deletes the session
    status = call(api, lambda_context, route_event("DELETE", f"/v1/sessions/{SESSION}"))[0]
    # THEN nothing of the session is left in any table or in the bucket, and nothing else changed
    after, objects_after = everything(aws)
    assert status in (200, 204)
    assert of_session(aws, after, objects_after) == (set(), set())
    assert after == items - mine and objects_after == objects - my_objects


def test_a_compaction_racing_the_delete_resurrects_nothing(small_world, lambda_context, monkeypatch):
    import ctxgate.adapters.sqs_compaction as sqs_compaction
    from ctxgate.retry import RetryPolicy

    aws, api = small_world, load_function("api")
    monkeypatch.setattr(sqs_compaction, "REDELIVERY", RetryPolicy(base_delay=0.0, max_delay=0.0))
    consumer = load_function("compact_context")
    # GIVEN a session whose growth just queued its first compaction job
    sqs, queued = aws.session.client("sqs"), []
    for i in range(40):
        assert (
            send(api, lambda_context, f"turn {i}: the quick brown fox jumps over the lazy dog at dawn " + "x" * 300)
            == 200
        )
        queued = sqs.receive_message(QueueUrl=aws.physical["CompactionQueue"], MaxNumberOfMessages=10).get("Messages")
        if queued:
            break
    assert queued, "the chat path queued a compaction"
    before, objects_before = everything(aws)
    # ... and a compaction that has read the session and uploaded its shard when the delete lands
    store = chat_service().engine.store
    original = store.commit_compaction

    deletes: list[tuple[int, str]] = []

    def commit_after_the_delete(*args, **kwargs):
        status, _, body = call(api, lambda_context, route_event("DELETE", f"/v1/sessions/{SESSION}"))
        deletes.append((status, body))
        return original(*args, **kwargs)

    store.commit_compaction = commit_after_the_delete
    # WHEN the real consumer handles the job
    from ctxgate.adapters.sqs_records import received_messages_event

    event = received_messages_event(queued, aws.stack.arns["CompactionQueue"], "us-east-1")
    consumer.lambda_handler(event, lambda_context)
    assert deletes and deletes[0][0] in (200, 204), "the delete landed between the compaction's read and its commit"
    # THEN the compaction's writes were refused: the session stays gone, and no item, shard, body or cache entry
    # of it remains anywhere
    after, objects_after = everything(aws)
    assert of_session(aws, after, objects_after) == (set(), set())
    mine, my_objects = of_session(aws, before, objects_before)
    assert after == before - mine and objects_after == objects_before - my_objects
    status, _, _ = call(api, lambda_context, load_event("get_session.json"))
    assert status == 404
    # ... and the id is usable again as a new session
    assert send(api, lambda_context, "a fresh start") == 200
