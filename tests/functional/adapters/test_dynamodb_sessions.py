"""DynamoDB + S3 session store on moto, with the table and bucket created from template.yaml."""

from __future__ import annotations

import threading
import time

import pytest
from ctxgate.adapters.dynamodb_context import DynamoContextStore
from ctxgate.adapters.dynamodb_sessions import DynamoSessionStore, session_pk
from ctxgate.adapters.s3_blobs import S3BlobStore
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.errors import SessionConflict
from ctxgate.messages import GenerationParams, Message
from ctxgate.sessions.ports import AppendConflict

from tests.fakes import chat_service


@pytest.fixture
def store(aws) -> DynamoSessionStore:
    return DynamoContextStore(aws.table, S3BlobStore(aws.bucket), ttl_seconds=3600, offload_threshold_bytes=4096)


def append(store, seq, *texts, session="s1", tenant="default", system=None):
    messages = [Message(role="user", content=t) for t in texts]
    return store.append(
        tenant,
        session,
        expected_last_seq=seq,
        messages=messages,
        tokens=[1] * len(messages),
        system_prompt=system,
        model="echo",
        now=time.time(),
    )


def test_append_creates_the_session(store):
    # GIVEN no session s1
    # WHEN two appends land, the first with a system prompt
    append(store, 0, "a", "b", system="sys")
    append(store, 2, "c", "d", "e")
    # THEN the session's metadata holds the last sequence number and the system prompt
    meta = store.get("default", "s1")
    assert meta is not None and meta.last_seq == 5 and meta.system_prompt == "sys"


def test_turns_are_read_page_by_page(store):
    # GIVEN a session with five turns
    append(store, 0, "a", "b", system="sys")
    append(store, 2, "c", "d", "e")
    # WHEN they are read two at a time, then the rest from where the first page ended
    first = store.turns("default", "s1", limit=2)
    rest = store.turns("default", "s1", after=first.next_after, limit=10)
    # THEN the pages hold the turns in order, and only the first points to a next page
    assert [t.seq for t in first.turns] == [1, 2] and first.next_after == 2
    assert [t.message.content for t in rest.turns] == ["c", "d", "e"] and rest.next_after is None


@pytest.mark.parametrize("stale_seq", [0, 5], ids=["session-exists-already", "ahead-of-the-session"])
def test_stale_version_is_a_conflict_and_writes_nothing(store, aws, stale_seq):
    # GIVEN a session whose last sequence number is 1
    append(store, 0, "a")
    before = aws.item_count()
    # WHEN an append expects another last sequence number
    with pytest.raises(AppendConflict):
        append(store, stale_seq, "again")
    # THEN it is refused as a conflict and no item was written
    assert aws.item_count() == before


def append_small_big_and_huge(store) -> tuple[str, str]:
    big = "x" * 300_000  # over DynamoDB's 400 KB item limit once framed? no - but over the 4 KB threshold here
    huge = "y" * 500_000  # a single DynamoDB item could not hold this
    append(store, 0, "small", big, huge)
    return big, huge


def test_a_large_message_goes_to_s3_behind_a_pointer(store, aws):
    # GIVEN a store that offloads bodies over 4 KB
    # WHEN one append holds a small, a big (300 KB) and a huge (500 KB) message
    append_small_big_and_huge(store)
    # THEN the small body stays inline, the others are S3 pointers under the session's prefix
    raw = aws.session.client("dynamodb").query(
        TableName=aws.table,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": session_pk("default", "s1")}},
    )["Items"]
    turns = {item["sk"]["S"]: item for item in raw if item["sk"]["S"] != "META"}
    assert "body" in turns["TURN#0000000001"] and "body_key" not in turns["TURN#0000000001"]
    assert "body_key" in turns["TURN#0000000002"] and "body_key" in turns["TURN#0000000003"]
    assert all(key.startswith("tenants/default/sessions/s1/") for key in aws.object_keys())


def test_an_offloaded_message_reads_back_whole(store):
    # GIVEN a session whose big and huge messages were offloaded to S3
    big, huge = append_small_big_and_huge(store)
    # WHEN its turns are read
    turns = store.turns("default", "s1").turns
    # THEN every message comes back whole
    assert [t.message.content for t in turns] == ["small", big, huge]


def test_a_losing_writer_leaves_no_orphaned_body(store, aws):
    # GIVEN an existing session
    append(store, 0, "a")
    # WHEN a writer with a stale version tries to append a body big enough to be offloaded
    with pytest.raises(AppendConflict):
        append(store, 0, "z" * 10_000)
    # THEN the body it uploaded is cleaned up
    assert aws.object_keys() == []


def test_delete_removes_every_item_and_object_of_the_session_only(store, aws):
    # GIVEN two sessions, one of them with an offloaded body
    append(store, 0, "a", "b" * 10_000)
    append(store, 0, "other", session="s2")
    # WHEN the first is deleted
    deleted = store.delete("default", "s1")
    # THEN it and its S3 object are gone, and the other session is untouched
    assert deleted is True
    assert store.get("default", "s1") is None and aws.object_keys() == []
    assert store.get("default", "s2") is not None


def test_deleting_a_missing_session_reports_false(store):
    # GIVEN a session that was deleted
    append(store, 0, "a", "b" * 10_000)
    store.delete("default", "s1")
    # WHEN it is deleted again
    deleted = store.delete("default", "s1")
    # THEN the store says there was nothing to delete
    assert deleted is False


def test_tenants_are_namespaced(store):
    # GIVEN session s1 of tenant acme
    append(store, 0, "mine", tenant="acme")
    # WHEN tenant globex reads a session of the same name
    meta, page = store.get("globex", "s1"), store.turns("globex", "s1")
    # THEN it sees neither acme's session nor its turns
    assert meta is None
    assert page.turns == []


def expiring_store(aws) -> DynamoSessionStore:
    return DynamoSessionStore(aws.table, S3BlobStore(aws.bucket), ttl_seconds=-10, offload_threshold_bytes=4096)


def test_an_expired_session_is_gone(aws):
    # GIVEN a store whose sessions expire before they are written
    store = expiring_store(aws)
    # WHEN a session is written and read back
    append(store, 0, "old")
    # THEN it is gone
    assert store.get("default", "s1") is None  # expired before DynamoDB's lazy TTL sweep


def test_an_expired_session_can_start_again(aws):
    # GIVEN an expired session, already found gone by a read (the read removes it: DynamoDB's TTL sweep is lazy)
    store = expiring_store(aws)
    append(store, 0, "old")
    store.get("default", "s1")
    # WHEN a client starts the session afresh
    append(store, 0, "new")
    # THEN only the new turn is in it
    assert [t.message.content for t in store.turns("default", "s1").turns] == ["new"]


def test_twenty_concurrent_turns_on_one_session_lose_and_duplicate_nothing(store):
    # GIVEN 20 clients sending one turn each to the same session at the same moment, with the service's real
    # jittered backoff between whole-turn retries
    service = chat_service(store, conflict_retries=40, conflict_deadline=120, sleep=time.sleep)
    results: dict[int, object] = {}
    barrier = threading.Barrier(20)

    def client(i: int) -> None:
        barrier.wait()
        request = ChatRequest("echo", [Message(role="user", content=f"m{i}")], GenerationParams())
        try:
            results[i] = service.stateful(Caller("default"), "busy", request).turn
        except SessionConflict as error:  # allowed by the contract: a clear 409 that stored nothing
            results[i] = error

    # WHEN they all send at once
    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN each successful turn is stored exactly once, a 409 stored nothing, and sequence numbers are gap-free
    succeeded = {i: turn for i, turn in results.items() if isinstance(turn, int)}
    turns = store.turns("default", "busy").turns
    assert len(succeeded) >= 15  # with backoff, nearly every client wins eventually (all 20, unless starved)
    assert sorted(succeeded.values()) == list(range(2, 2 * len(succeeded) + 1, 2))
    assert [t.seq for t in turns] == list(range(1, 2 * len(succeeded) + 1))
    users = [t.message.content for t in turns if t.message.role == "user"]
    assert sorted(users) == sorted(f"m{i}" for i in succeeded)
    for i, turn in succeeded.items():  # each client got its own reply, which saw exactly the history before it
        assert turns[turn - 2].message.content == f"m{i}"
        assert turns[turn - 1].message.content == f"[echo] received {turn - 1} messages; last: m{i}"
