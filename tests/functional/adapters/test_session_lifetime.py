"""Sessions expire whole, never in pieces: on moto, with an injected clock and the sweeper as scheduled."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import Caller
from ctxgate.bootstrap import build_chat
from ctxgate.chat.models import ChatRequest
from ctxgate.context.models import CompactionRequest
from ctxgate.messages import GenerationParams, Message
from ctxgate.settings import get_settings

HOUR = 3600.0
START = 1_800_000_000.0
DAYS = 7


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(aws, monkeypatch):
    monkeypatch.setenv("CTXGATE_SESSION_TTL_SECONDS", "3600")
    monkeypatch.setenv("CTXGATE_OFFLOAD_THRESHOLD_BYTES", "200")  # long messages go to S3
    monkeypatch.setenv("CTXGATE_EMBEDDINGS", "off")
    monkeypatch.setenv("CTXGATE_EXPIRY_SHARDS", "2")  # moto scans the table for every index query
    get_settings.cache_clear()
    clock = Clock()
    chat = build_chat(get_settings())
    chat.clock = chat.store.clock = clock
    return chat, clock


def turn(chat, session: str, text: str, **extra) -> None:
    chat.stateful(
        Caller("default"),
        session,
        ChatRequest("echo", [Message(role="user", content=text)], GenerationParams(), **extra),
    )


def items(aws, session: str) -> list[dict]:
    ddb = aws.session.client("dynamodb")
    pk = f"T#default#S#{session}"
    return ddb.query(
        TableName=aws.table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}}
    )["Items"]


def objects(aws, session: str) -> list[str]:
    return [k for k in aws.object_keys() if k.startswith(f"tenants/default/sessions/{session}/")]


def test_a_session_used_every_20_minutes_stays_whole_for_a_week(aws, world):
    chat, clock = world
    store = chat.store
    # GIVEN a session with a 1-hour TTL, a pin and a long (offloaded) first message
    turn(chat, "weekly", "Remember the gate code. " + "x" * 300, pins=["The gate code is 4417."])
    # WHEN it gets a turn every 20 minutes for a simulated week (appended as the chat path appends them), with
    # the sweeper running every hour
    last_seq, minutes = 2, 0
    for _ in range(1, DAYS * 24 * 3):
        for _ in range(4):  # 20 minutes in 5-minute ticks; the sweeper runs on the hour
            minutes += 5
            clock.now = START + minutes * 60
            if minutes % 60 == 0:
                store.sweep_expired(clock.now)
        reply = [Message(role="user", content="still here"), Message(role="assistant", content="noted")]
        store.append(
            "default",
            "weekly",
            expected_last_seq=last_seq,
            messages=reply,
            tokens=[5, 5],
            system_prompt=None,
            model="echo",
            now=clock.now,
        )
        last_seq += 2
    # THEN every turn, the pin and the offloaded body are still there, and the session still reads as live
    meta = store.get("default", "weekly")
    assert meta is not None and meta.last_seq == 2 * DAYS * 24 * 3
    stored = items(aws, "weekly")
    assert sum(i["sk"]["S"].startswith("TURN#") for i in stored) == 2 * DAYS * 24 * 3
    assert sum(i["sk"]["S"].startswith("PIN#") for i in stored) == 1
    assert objects(aws, "weekly"), "the offloaded first message is still in S3"
    # AND no item but the session's metadata carries an expiry of its own
    assert [i["sk"]["S"] for i in stored if "expires_at" in i] == ["META"]


def test_an_idle_session_disappears_entirely_s3_included(aws, world):
    chat, clock = world
    # GIVEN a session with offloaded bodies, a pin and a compacted history (summaries and a recall shard in S3)
    for i in range(6):
        turn(chat, "idle", f"message {i} " + "y" * 300, pins=["Always reply in French."] if i == 0 else [])
    meta = chat.store.get("default", "idle")
    chat.engine.compactor.run(
        CompactionRequest(tenant="default", session_id="idle", evicted_through=0), force=True, keep_tokens=0
    )
    assert any("/recall/" in k for k in objects(aws, "idle")) and any("/turns/" in k for k in objects(aws, "idle"))
    assert meta is not None
    # WHEN it stays idle past its TTL and the sweeper runs
    clock.now = START + HOUR + 60
    assert chat.store.sweep_expired(clock.now) == 1
    # THEN every DynamoDB item and every S3 object of it is gone
    assert items(aws, "idle") == []
    assert objects(aws, "idle") == []


def test_the_sweeper_spares_a_session_revived_after_the_index_was_read(aws, world):
    chat, clock = world
    # GIVEN a session that expired
    turn(chat, "revived", "hello")
    clock.now = START + 2 * HOUR
    expired = chat.store.expired(clock.now)
    assert ("default", "revived") in expired
    # WHEN it is used again (a new incarnation) before the sweeper acts on what it read
    turn(chat, "revived", "hello again")
    # THEN the sweeper, acting on what it read, leaves it alone
    assert not any(chat.store.sweep_if_expired(t, s, clock.now) for t, s in expired)
    assert chat.store.get("default", "revived") is not None


def test_an_orphaned_body_is_swept_and_referenced_objects_are_kept(aws, world):
    import time

    chat, _ = world
    store = chat.store
    # GIVEN a session whose offloaded body is referenced, and a body a crash left between upload and commit
    chat.clock = store.clock = time.time
    turn(chat, "crashy", "a long message " + "z" * 300)
    referenced = objects(aws, "crashy")
    orphan = "tenants/default/sessions/crashy/turns/0000000003-deadbeef.json"
    store.blobs.put(orphan, b"{}")
    # WHEN the sweeper runs once they are older than the grace period
    swept = store.sweep_orphans(time.time() + 3600 + 60, grace_seconds=3600, window_seconds=None)
    # THEN only the orphan is gone
    assert swept == 1
    assert objects(aws, "crashy") == referenced


def test_the_scheduled_sweeper_deletes_expired_sessions(aws, world, lambda_context):
    import time

    from tests.conftest import load_function

    chat, clock = world
    # GIVEN a session whose last use was two hours ago (1-hour TTL)
    clock.now = time.time() - 2 * HOUR
    turn(chat, "stale", "hello")
    # WHEN the scheduled sweeper runs
    result = load_function("sweep").lambda_handler({"source": "aws.scheduler"}, lambda_context)
    # THEN the session is gone, whole
    assert result["expired_sessions"] == 1
    assert items(aws, "stale") == []
