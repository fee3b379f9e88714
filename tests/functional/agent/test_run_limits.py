"""Run creation refuses what a run may not do, with a 400 in OpenAI's error shape and before anything is stored
or queued: too many tools, too many steps, too long a deadline, and tools that may not run."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import FakeContext, _reset_caches, load_event, load_function

OWN_FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:ctxgate-local-RunStatusFunction"
LISTED = "arn:aws:lambda:us-east-1:123456789012:function:order-lookup"


@pytest.fixture
def api(aws, monkeypatch):

    monkeypatch.setenv("CTXGATE_MAX_RUN_STEPS", "10")
    monkeypatch.setenv("CTXGATE_MAX_RUN_DEADLINE_SECONDS", "600")
    monkeypatch.setenv("CTXGATE_TOOL_FUNCTION_ARNS", f"{LISTED},{OWN_FUNCTION}")
    _reset_caches()
    yield load_function("api")


def create_run(api, **body: Any) -> tuple[int, dict[str, Any]]:
    event = load_event("get_session.json", rawPath="/v1/runs", routeKey="POST /v1/runs", queryStringParameters=None)
    event["requestContext"]["http"].update(method="POST", path="/v1/runs")
    event["body"] = json.dumps({"model": "echo", "input": [{"role": "user", "content": "hi"}], **body})
    response = api.lambda_handler(event, FakeContext())
    return response["statusCode"], json.loads(response["body"])


def webhook(name: str, url: str = "https://tools.example/hook") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name}, "endpoint": {"url": url}}


def lambda_tool(arn: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "lookup"}, "lambda_arn": arn}


def queued_messages(aws) -> int:
    sqs = aws.session.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=aws.physical["RunsQueue"], AttributeNames=["All"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"tools": [webhook(f"t{i}") for i in range(65)]}, "tools", "invalid_request"),
        ({"max_steps": 11}, "max_steps", "run_limit_exceeded"),
        ({"max_steps": 51}, "max_steps", "invalid_request"),
        ({"deadline_seconds": 601}, "deadline_seconds", "run_limit_exceeded"),
        ({"tools": [lambda_tool("arn:aws:lambda:us-east-1:123456789012:function:billing")]}, "tools.0", None),
        ({"tools": [lambda_tool(OWN_FUNCTION)]}, "tools.0", None),
        ({"tools": [webhook("hook", "http://127.0.0.1/hook")]}, "tools.0", None),
        ({"tools": [webhook("hook", "https://tools.example:8443/hook")]}, "tools.0", None),
    ],
    ids=[
        "65-tools",
        "steps-over-gateway-limit",
        "steps-over-ceiling",
        "deadline-over-limit",
        "unlisted-lambda",
        "own-function-listed",
        "loopback-webhook",
        "webhook-port",
    ],
)
def test_a_run_over_a_limit_is_refused_before_it_is_queued(api, aws, body, param, code):
    # GIVEN a gateway allowing 10 steps, a 600 s deadline and two listed functions, one of them ctxgate's own
    # WHEN a run asks for more
    status, error = create_run(api, **body)
    # THEN it gets a 400 naming the field, and nothing was queued
    assert status == 400, error
    assert error["error"]["type"] == "invalid_request_error" and error["error"]["param"] == param
    assert code is None or error["error"]["code"] == code
    assert queued_messages(aws) == 0


def test_refused_tools_say_why(api):
    # GIVEN / WHEN an unlisted function, one of ctxgate's own, and a loopback webhook
    # THEN each message names the rule
    assert "ToolFunctionArns" in create_run(api, tools=[lambda_tool(LISTED + "x")])[1]["error"]["message"]
    own = create_run(api, tools=[lambda_tool(OWN_FUNCTION)])[1]["error"]
    assert own["code"] == "tool_not_allowed" and "own functions" in own["message"]
    assert "127.0.0.1" in create_run(api, tools=[webhook("h", "http://127.0.0.1/h")])[1]["error"]["message"]


def test_a_run_within_the_limits_gets_the_longest_deadline_when_it_asks_none(api, aws):
    from ctxgate.bootstrap import agent_service

    # GIVEN a run with 64 tools (webhooks and a listed function) and no deadline
    tools = [webhook(f"t{i}") for i in range(63)] + [lambda_tool(LISTED)]
    # WHEN it is created
    status, created = create_run(api, tools=tools, max_steps=10)
    # THEN it is queued with the gateway's longest deadline
    assert status == 202, created
    run = agent_service().runs.get("default", created["id"])
    assert run is not None and run.deadline_at == pytest.approx(run.created_at + 600)
    assert queued_messages(aws) == 1
