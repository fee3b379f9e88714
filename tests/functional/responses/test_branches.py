"""The branch/fork store on moto (tables from template.yaml): a fork shares its parent's turns without copying them,
has its own context state, and lives and dies with its ancestors."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from ctxgate.adapters.dynamodb_context import DynamoContextStore
from ctxgate.adapters.dynamodb_sessions import session_pk
from ctxgate.adapters.s3_blobs import S3BlobStore
from ctxgate.auth.models import Caller
from ctxgate.context.assemble import ContextBudgetExceeded
from ctxgate.context.engine import new_pin
from ctxgate.messages import GenerationParams, Message
from ctxgate.responses.models import ResponseRequest
from ctxgate.responses.service import ResponsesService
from ctxgate.sessions.lineage import history
from ctxgate.sessions.models import Segment

from tests.fakes import chat_service

TENANT = "default"
CALLER = Caller(tenant=TENANT)


@pytest.fixture
def store(aws) -> DynamoContextStore:
    return DynamoContextStore(aws.table, S3BlobStore(aws.bucket), ttl_seconds=3600, offload_threshold_bytes=4096)


def append(store, session, seq, *texts, lineage=None):
    messages = [Message(role="user", content=t) for t in texts]
    now = time.time()
    return store.append(
        TENANT,
        session,
        expected_last_seq=seq,
        messages=messages,
        tokens=[1] * len(messages),
        system_prompt=None,
        model="echo",
        now=now,
        lineage=lineage,
    )


def texts(store, session):
    return [t.message.text() for t in history(store, TENANT, store.get(TENANT, session)).turns]


def own_turn_items(aws, session):
    items = aws.session.client("dynamodb").query(
        TableName=aws.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :turn)",
        ExpressionAttributeValues={":pk": {"S": session_pk(TENANT, session)}, ":turn": {"S": "TURN#"}},
    )["Items"]
    return [int(i["seq"]["N"]) for i in items]


def test_a_fork_shares_the_parents_turns_without_copying_them(store, aws):
    # GIVEN a session with four turns
    append(store, "parent", 0, "a", "b", "c", "d")
    # WHEN a branch forks after turn 2 and gets a turn of its own
    branch = store.fork(TENANT, store.get(TENANT, "parent"), 2, "branch", now=time.time())
    append(store, "branch", 2, "x", lineage=branch.lineage)
    # THEN its history is the parent's first two turns then its own, and it stores only its own turn
    assert texts(store, "branch") == ["a", "b", "x"]
    assert own_turn_items(aws, "branch") == [3]
    assert branch.lineage == [Segment(session_id="parent", through=2)]
    assert texts(store, "parent") == ["a", "b", "c", "d"]


def test_a_fork_of_a_fork_reads_a_flat_lineage(store):
    # GIVEN a parent and a branch of it after turn 2 with two turns of its own
    append(store, "parent", 0, "a", "b", "c")
    branch = store.fork(TENANT, store.get(TENANT, "parent"), 2, "branch", now=time.time())
    append(store, "branch", 2, "x", "y", lineage=branch.lineage)
    # WHEN the branch is forked after its turn 3 (its own first) and after turn 1 (the parent's)
    deep = store.fork(TENANT, store.get(TENANT, "branch"), 3, "deep", now=time.time())
    shallow = store.fork(TENANT, store.get(TENANT, "branch"), 1, "shallow", now=time.time())
    # THEN each lineage names the sessions that own its turns, and reads them in order
    assert deep.lineage == [Segment(session_id="parent", through=2), Segment(session_id="branch", through=3)]
    assert shallow.lineage == [Segment(session_id="parent", through=1)]
    assert texts(store, "deep") == ["a", "b", "x"] and texts(store, "shallow") == ["a"]


def test_a_branch_has_its_own_pins_copied_at_the_fork(store):
    # GIVEN a parent with a pin
    append(store, "parent", 0, "a")
    store.add_pin(TENANT, "parent", new_pin("Budget: 2000 EUR.", time.time()), now=time.time())
    # WHEN it is forked and the branch's copy of the pin is deleted
    store.fork(TENANT, store.get(TENANT, "parent"), 1, "branch", now=time.time())
    pin = store.context(TENANT, "branch").pins[0]
    assert pin.content == "Budget: 2000 EUR."
    store.delete_pin(TENANT, "branch", pin.id)
    # THEN the parent keeps its pin
    assert [p.content for p in store.context(TENANT, "parent").pins] == ["Budget: 2000 EUR."]
    assert store.context(TENANT, "branch").pins == []


def test_a_branch_append_keeps_its_ancestors_alive(store):
    # GIVEN a parent and a branch of it
    append(store, "parent", 0, "a", "b")
    branch = store.fork(TENANT, store.get(TENANT, "parent"), 1, "branch", now=time.time())
    before = store.get(TENANT, "parent").expires_at
    # WHEN the branch is appended to later
    later = time.time() + 100
    store.append(
        TENANT,
        "branch",
        expected_last_seq=1,
        messages=[Message(role="user", content="x")],
        tokens=[1],
        system_prompt=None,
        model="echo",
        now=later,
        lineage=branch.lineage,
    )
    # THEN the parent expires no sooner than the branch
    assert store.get(TENANT, "parent").expires_at == store.get(TENANT, "branch").expires_at > before


def test_deleting_a_session_deletes_its_branches_and_records(store, aws):
    # GIVEN a parent, a branch of it and a branch of the branch
    append(store, "parent", 0, "a", "b")
    branch = store.fork(TENANT, store.get(TENANT, "parent"), 1, "branch", now=time.time())
    append(store, "branch", 1, "x", lineage=branch.lineage)
    store.fork(TENANT, store.get(TENANT, "branch"), 2, "deep", now=time.time())
    # WHEN the parent is deleted
    assert store.delete(TENANT, "parent")
    # THEN every session that read its turns is gone too, and nothing is left in the table
    assert store.get(TENANT, "branch") is None and store.get(TENANT, "deep") is None
    assert aws.item_count() == 0


def test_deleting_a_branch_leaves_its_parent_whole(store):
    # GIVEN a parent and a branch
    append(store, "parent", 0, "a", "b")
    store.fork(TENANT, store.get(TENANT, "parent"), 1, "branch", now=time.time())
    # WHEN the branch is deleted
    assert store.delete(TENANT, "branch")
    # THEN the parent is as it was, and deleting it later deletes only itself
    assert texts(store, "parent") == ["a", "b"]
    assert store.delete(TENANT, "parent") and not store.delete(TENANT, "branch")


def request(text, previous=None):
    return ResponseRequest(
        model="echo",
        input=[Message(role="user", content=text)],
        params=GenerationParams(),
        previous_response_id=previous,
    )


def test_compacting_a_branch_leaves_the_parent_untouched(store):
    # GIVEN a chain of responses with a small budget, and a fork from its second response
    responses = ResponsesService(chat_service(store, budget=512))
    first = responses.create(CALLER, request("word " * 40)).record
    second = responses.create(CALLER, request("word " * 40, first.id)).record
    responses.create(CALLER, request("tail", second.id))
    fork = responses.create(CALLER, request("fork " * 40, second.id)).record
    # WHEN the branch grows past its budget, so its history is compacted
    previous = fork.id
    for _ in range(4):
        previous = responses.create(CALLER, request("more " * 40, previous)).record.id
    # THEN the branch has summaries of its own, and the parent has none and all its turns
    branch = store.context(TENANT, fork.session_id)
    parent = store.context(TENANT, first.session_id)
    assert fork.session_id != first.session_id
    assert branch.meta.evicted_through > 0 and branch.epochs
    assert parent.meta.evicted_through == 0 and parent.epochs == [] and parent.meta.last_seq == 6


def test_a_response_record_is_committed_with_its_turns(store):
    # GIVEN a response
    responses = ResponsesService(chat_service(store))
    record = responses.create(CALLER, request("hello")).record
    # THEN it points at its input and output turns, and deleting it leaves the turns
    assert (record.input_seq, record.output_seq) == (1, 2)
    assert responses.get(TENANT, record.id) == record
    responses.delete(TENANT, record.id)
    assert texts(store, record.session_id)[0] == "hello"


def test_truncation_disabled_refuses_a_history_that_no_longer_fits_and_compacts_nothing(store):
    # GIVEN a chain whose history has outgrown a small budget
    responses = ResponsesService(chat_service(store, budget=512))
    previous = responses.create(CALLER, request("word " * 60)).record
    for _ in range(2):
        previous = responses.create(CALLER, request("word " * 60, previous.id)).record
    before = store.context(TENANT, previous.session_id).meta
    # WHEN the next response asks for no truncation
    disabled = replace(request("word " * 60, previous.id), truncation="disabled")
    with pytest.raises(ContextBudgetExceeded):
        responses.create(CALLER, disabled)
    # THEN nothing was stored or compacted; with truncation "auto" the same request is served
    assert store.context(TENANT, previous.session_id).meta == before
    assert responses.create(CALLER, request("word " * 60, previous.id)).record.output_seq == before.last_seq + 2
