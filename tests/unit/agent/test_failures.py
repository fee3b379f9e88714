"""What a failed run stores and shows: a clean error type and message, never a stack trace or upstream text."""

from __future__ import annotations

import json

from ctxgate.agent.failures import INTERNAL, public_failure


def lambda_failure(error_type: str, message: str) -> dict[str, str]:
    cause = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "c6af9ac6",
        "stackTrace": ['  File "/var/task/ctxgate/providers/openai.py", line 88, in complete\n'],
    }
    return {"Error": error_type, "Cause": json.dumps(cause)}


def test_a_ctxgate_error_keeps_its_message_without_the_stack_trace():
    kind, message = public_failure(lambda_failure("ToolResultMissing", "tool call c1 has no result yet"))
    assert (kind, message) == ("ToolResultMissing", "tool call c1 has no result yet")


def test_a_provider_failure_does_not_quote_the_upstream():
    failure = lambda_failure("ProviderFailure", "All providers failed: agent: HTTP 500 from http://10.0.3.7:8000: boom")
    kind, message = public_failure(failure)
    assert kind == "ProviderFailure" and "All providers failed" in message
    assert "10.0.3.7" not in message and "boom" not in message


def test_an_unexpected_error_is_an_internal_error():
    assert public_failure(lambda_failure("ClientError", "AccessDenied on arn:aws:dynamodb:...:table/x")) == INTERNAL


def test_a_step_functions_timeout_has_a_fixed_message():
    assert public_failure({"Error": "States.Timeout", "Cause": "Task timed out after 29.00 seconds"})[0] == (
        "States.Timeout"
    )


def test_only_the_first_line_of_a_message_is_kept():
    _, message = public_failure(lambda_failure("InvalidRequest", "first line\nTraceback (most recent call last):"))
    assert message == "first line"
