"""The agent loop's internal task functions act for the tenant of the run they load, never for an event's word
alone: runs are keyed by tenant, so an event naming another tenant finds no run and changes nothing."""

from __future__ import annotations

import json

import pytest
from ctxgate.errors import NotFound

from tests.conftest import FakeContext, load_function, sample_run

RUN_ID = "run_0a1b2c3d4e5f40718293a4b5c6d7e8f9"


@pytest.fixture
def run_of_a(aws):
    return sample_run("tenant-a", RUN_ID)


def stored_run(tenant: str) -> dict:
    from ctxgate.bootstrap import agent_service

    return agent_service().get(tenant, RUN_ID).model_dump()


@pytest.mark.parametrize(
    ("function", "event"),
    [
        ("invoke_model", {"run_id": RUN_ID}),
        ("run_tool", {"run_id": RUN_ID, "tool_call_id": "call_1"}),
        ("run_status", {"run_id": RUN_ID, "action": "check"}),
        ("run_status", {"run_id": RUN_ID, "action": "failed", "error": {"Error": "Boom"}}),
        ("assemble_context", {"run_id": RUN_ID}),
        ("cache_lookup", {"run_id": RUN_ID}),
    ],
)
def test_a_task_event_naming_another_tenant_finds_no_run(run_of_a, function, event):
    # GIVEN tenant A's queued run
    before = stored_run("tenant-a")
    # WHEN a task is invoked for that run id in tenant B's name
    with pytest.raises(NotFound):
        load_function(function).lambda_handler({**event, "tenant": "tenant-b"}, FakeContext())
    # THEN it found no run, and A's run is unchanged
    assert stored_run("tenant-a") == before


def test_the_starter_skips_a_job_naming_another_tenant(run_of_a, aws):
    # GIVEN tenant A's queued run, and a runs-queue job naming it in tenant B's name
    body = json.dumps({"tenant": "tenant-b", "run_id": RUN_ID})
    record = {
        "messageId": "m1",
        "receiptHandle": "h1",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:runs",
        "awsRegion": "us-east-1",
    }
    # WHEN the starter handles it
    result = load_function("start_run").lambda_handler({"Records": [record]}, FakeContext())
    # THEN it succeeds without starting anything, and A's run is still queued
    assert result == {"batchItemFailures": []}
    sfn = aws.session.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=aws.physical["AgentStateMachine"])["executions"] == []
    assert stored_run("tenant-a")["status"] == "queued"


def test_the_tasks_work_for_the_runs_own_tenant(run_of_a):
    # GIVEN tenant A's run WHEN its own tenant assembles its context and looks it up in the cache
    plan = load_function("assemble_context").lambda_handler({"tenant": "tenant-a", "run_id": RUN_ID}, FakeContext())
    task = {"tenant": "tenant-a", "run_id": RUN_ID, "message": "hi", "params": {"temperature": 0}}
    lookup = load_function("cache_lookup").lambda_handler(task, FakeContext())
    # THEN both act on the run's session
    assert plan["session_id"] == f"run-{RUN_ID}" and lookup["status"] == "miss"
