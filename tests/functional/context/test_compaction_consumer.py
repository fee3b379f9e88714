"""functions/compact_context/app.py on moto: the queue from template.yaml, the real handler, the real store."""

from __future__ import annotations

import json

import pytest
from ctxgate.auth.models import Caller
from ctxgate.bootstrap import chat_service, session_service
from ctxgate.chat.models import ChatRequest
from ctxgate.context.models import CompactionRequest
from ctxgate.messages import GenerationParams, Message
from ctxgate.retry import RetryPolicy

from tests.conftest import load_function


@pytest.fixture
def consumer(aws, monkeypatch):
    import ctxgate.adapters.sqs_compaction as sqs_compaction

    # Redelivery delays are real SQS visibility timeouts; make them immediate so the test takes no time.
    monkeypatch.setattr(sqs_compaction, "REDELIVERY", RetryPolicy(base_delay=0.0, max_delay=0.0))
    return load_function("compact_context")


def fill(session: str, turns: int, budget: int = 512) -> None:
    service = chat_service()
    for i in range(turns):
        text = f"turn {i}: the quick brown fox jumps over the lazy dog near the riverbank at dawn"
        service.stateful(
            Caller("default"),
            session,
            ChatRequest("echo", [Message(role="user", content=text)], GenerationParams(), budget_tokens=budget),
        )


def receive(aws, queue: str = "CompactionQueue", wait: int = 0) -> list[dict]:
    sqs = aws.session.client("sqs")
    return sqs.receive_message(
        QueueUrl=aws.physical[queue], MaxNumberOfMessages=10, WaitTimeSeconds=wait, AttributeNames=["All"]
    ).get("Messages", [])


def event(messages: list[dict], aws) -> dict:
    from ctxgate.adapters.sqs_records import received_messages_event

    return received_messages_event(messages, aws.stack.arns["CompactionQueue"], "us-east-1")


def epochs(session: str) -> list:
    return chat_service().store.context("default", session).epochs


def test_crossing_the_high_water_mark_queues_a_compaction(aws):
    # GIVEN a new session on a 512-token budget
    # WHEN its history grows past its high-water mark
    fill("s1", 12)
    # THEN the chat path has queued a compaction job
    messages = receive(aws)
    assert messages, "the chat path queued a compaction"


def test_the_consumer_lands_a_queued_compaction(aws, consumer, lambda_context):
    # GIVEN a session whose history grew past its high-water mark, and the compaction job that queued
    fill("s1", 12)
    messages = receive(aws)
    # WHEN the consumer handles the batch
    response = consumer.lambda_handler(event(messages, aws), lambda_context)
    # THEN nothing failed and the session has a summary epoch and an eviction mark
    assert response == {"batchItemFailures": []}
    meta = chat_service().store.get("default", "s1")
    assert meta.evicted_through > 0 and len(epochs("s1")) == 1
    assert epochs("s1")[0].last_seq == meta.evicted_through


def deliveries_of_one_job(aws) -> list[dict]:
    """Two SQS messages carrying the same compaction job of session s2."""
    fill("s2", 12)
    job = json.loads(receive(aws)[0]["Body"])
    return [
        {
            "MessageId": f"m{i}",
            "ReceiptHandle": f"r{i}",
            "Body": json.dumps(job),
            "Attributes": {"ApproximateReceiveCount": "1"},
        }
        for i in range(2)
    ]


def test_a_duplicate_delivery_creates_no_second_epoch(aws, consumer, lambda_context):
    # GIVEN one batch that holds the same compaction job twice
    duplicate = deliveries_of_one_job(aws)
    # WHEN the consumer handles it
    response = consumer.lambda_handler(event(duplicate, aws), lambda_context)
    # THEN both succeed and the session has one epoch
    assert response == {"batchItemFailures": []}
    assert len(epochs("s2")) == 1


def test_a_later_redelivery_of_a_landed_job_is_a_no_op(aws, consumer, lambda_context):
    # GIVEN a compaction job that already landed
    duplicate = deliveries_of_one_job(aws)
    assert consumer.lambda_handler(event(duplicate, aws), lambda_context) == {"batchItemFailures": []}
    # WHEN the same job is delivered again, later
    response = consumer.lambda_handler(event(duplicate[:1], aws), lambda_context)
    # THEN it succeeds without adding an epoch
    assert response == {"batchItemFailures": []}
    assert len(epochs("s2")) == 1


def batch_with_a_poison_message(aws) -> tuple[list[dict], list[str]]:
    """One received batch holding good compaction jobs and a poison one, and the poison message's id."""
    sqs = aws.session.client("sqs")
    fill("s3", 12)
    good = receive(aws)
    for m in good:  # make the good job visible again so it shares a batch with the poison one
        sqs.change_message_visibility(
            QueueUrl=aws.physical["CompactionQueue"], ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
        )
    sqs.send_message(QueueUrl=aws.physical["CompactionQueue"], MessageBody='{"tenant": "default"}')
    batch = receive(aws)
    return batch, [m["MessageId"] for m in batch if "session_id" not in m["Body"]]


def test_a_poison_message_fails_alone(aws, consumer, lambda_context):
    # GIVEN one batch holding good jobs and a poison one
    batch, poison = batch_with_a_poison_message(aws)
    # WHEN it is handled
    response = consumer.lambda_handler(event(batch, aws), lambda_context)
    # THEN exactly the poison message is reported as failed
    assert response == {"batchItemFailures": [{"itemIdentifier": poison[0]}]}


def test_a_poison_message_reaches_the_dlq_after_max_receives(aws, consumer, lambda_context):
    from ctxgate_local.sqs_delivery import deliver_once

    # GIVEN a poison message that the consumer has just reported as failed
    batch, _ = batch_with_a_poison_message(aws)
    consumer.lambda_handler(event(batch, aws), lambda_context)
    # WHEN the local event-source mapping keeps redelivering the queue
    sqs = aws.session.client("sqs")
    function = aws.stack.functions["CompactContextFunction"]
    for _ in range(10):
        deliver_once(sqs, function, function.queues[0], aws.stack)
    # THEN the redrive policy moved it to the DLQ, and the queue is empty
    dlq = receive(aws, "CompactionDeadLetterQueue")
    assert [m["Body"] for m in dlq] == ['{"tenant": "default"}']
    assert receive(aws) == []


def test_an_append_during_compaction_is_not_lost(aws, consumer):
    # GIVEN a compaction that reads the session, and a turn appended before it commits
    fill("s4", 12)
    engine = chat_service().engine
    store = engine.store
    original = store.commit_compaction
    raced = []

    def commit_after_a_concurrent_append(*args, **kwargs):
        if not raced:
            raced.append(True)
            fill("s4", 1)  # another request lands between the compaction's read and its write
        return original(*args, **kwargs)

    store.commit_compaction = commit_after_a_concurrent_append
    meta = store.get("default", "s4")
    # WHEN the compaction runs
    engine.compactor.run(CompactionRequest(tenant="default", session_id="s4", evicted_through=meta.evicted_through))
    # THEN both the compaction and the appended turn landed, and every turn is either summarised or verbatim
    after = store.get("default", "s4")
    assert after.last_seq == meta.last_seq + 2 and after.evicted_through > 0
    turns = store.turns("default", "s4").turns
    assert [t.seq for t in turns] == list(range(1, after.last_seq + 1))
    plan = session_service().inspect("default", "s4", "hello")
    covered = [s for first, last in plan.summarised for s in range(first, last + 1)]
    assert sorted(covered + plan.included) == list(range(1, after.last_seq + 1))
