"""Lambda tools: only the operator's listed functions, never ctxgate's own, invoked on lambda's real wire format
(botocore's Stubber checks each call against the service model)."""

from __future__ import annotations

import io
import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from ctxgate.adapters.lambda_tools import MAX_RESPONSE_BYTES, LambdaToolRunner
from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError, TransientError

LISTED = "arn:aws:lambda:us-east-1:123456789012:function:order-lookup"
OWN = "arn:aws:lambda:us-east-1:123456789012:function:prod-gw-RunToolFunction-AbC123"


def lambda_tool(arn: str) -> ToolSpec:
    return ToolSpec.model_validate({"function": {"name": "lookup"}, "lambda_arn": arn})


@pytest.fixture
def stubbed():
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield LambdaToolRunner([LISTED, OWN], own_prefixes=["prod-gw-"], lambda_client=client), stubber


def payload(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_a_listed_function_is_invoked_with_the_arguments_as_its_event(stubbed):
    runner, stubber = stubbed
    stubber.add_response(
        "invoke",
        {"StatusCode": 200, "Payload": payload(b'{"ships": "tomorrow"}')},
        {"FunctionName": LISTED, "Payload": json.dumps({"order": 1042}).encode()},
    )
    assert runner.run(lambda_tool(LISTED), {"order": 1042}, idempotency_key="r:c") == '{"ships": "tomorrow"}'


def test_a_function_the_operator_did_not_list_is_refused_without_invoking_it(stubbed):
    runner, stubber = stubbed
    other = "arn:aws:lambda:us-east-1:123456789012:function:billing"
    with pytest.raises(ToolError, match="ToolFunctionArns"):
        runner.check(lambda_tool(other))
    with pytest.raises(ToolError, match="ToolFunctionArns"):
        runner.run(lambda_tool(other), {}, idempotency_key="r:c")
    stubber.assert_no_pending_responses()


def test_a_qualified_arn_is_a_different_function_unless_listed(stubbed):
    runner, _ = stubbed
    with pytest.raises(ToolError):
        runner.check(lambda_tool(f"{LISTED}:live"))


def test_ctxgates_own_functions_are_refused_even_when_listed(stubbed):
    runner, _ = stubbed
    with pytest.raises(ToolError, match="own functions"):
        runner.check(lambda_tool(OWN))
    with pytest.raises(ToolError, match="own functions"):
        runner.run(lambda_tool(OWN), {"tenant": "someone-else"}, idempotency_key="r:c")


def test_with_no_functions_listed_none_may_run():
    runner = LambdaToolRunner([], own_prefixes=["prod-gw-"], lambda_client=object())
    with pytest.raises(ToolError):
        runner.check(lambda_tool(LISTED))


def test_a_throttled_invoke_is_transient(stubbed):
    runner, stubber = stubbed
    stubber.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    with pytest.raises(TransientError):
        runner.run(lambda_tool(LISTED), {}, idempotency_key="r:c")


def test_a_function_error_reports_its_message_without_the_stack_trace(stubbed):
    runner, stubber = stubbed
    error = {"errorMessage": "no order 7", "errorType": "KeyError", "stackTrace": ['  File "/var/task/app.py"']}
    stubber.add_response(
        "invoke", {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": payload(json.dumps(error).encode())}
    )
    with pytest.raises(ToolError) as failed:
        runner.run(lambda_tool(LISTED), {}, idempotency_key="r:c")
    assert "KeyError: no order 7" in str(failed.value) and "/var/task" not in str(failed.value)


def test_a_response_over_the_cap_is_an_error(stubbed):
    runner, stubber = stubbed
    stubber.add_response("invoke", {"StatusCode": 200, "Payload": payload(b"x" * (MAX_RESPONSE_BYTES + 1))})
    with pytest.raises(ToolError, match="over"):
        runner.run(lambda_tool(LISTED), {}, idempotency_key="r:c")
