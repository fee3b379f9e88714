"""A failed run's public cause: a ctxgate error's message, never a Lambda stack trace or a foreign error's text."""

from __future__ import annotations

import json

from ctxgate.agent.failures import GENERIC_CAUSE, public_cause


def lambda_failure(error_type: str, message: str) -> dict:
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": "r-1",
        "stackTrace": ['  File "/var/task/app.py", line 20, in lambda_handler\n', "    raise\n"],
    }
    return {"Error": error_type, "Cause": json.dumps(payload)}


def test_a_ctxgate_error_keeps_its_client_facing_message_without_the_stack_trace():
    cause = public_cause(lambda_failure("ProviderFailure", "The model `m` could not be reached."))
    assert cause == "The model `m` could not be reached."


def test_a_foreign_error_is_summarised():
    failure = lambda_failure("ClientError", "AccessDenied on arn:aws:dynamodb:us-east-1:123456789012:table/x")
    assert public_cause(failure) == GENERIC_CAUSE


def test_a_ctxgate_error_name_with_an_unreadable_cause_is_summarised():
    assert public_cause({"Error": "InvalidRequest", "Cause": "Traceback (most recent call last): ..."}) == GENERIC_CAUSE


def test_a_state_machine_timeout_says_so():
    assert "time limit" in public_cause({"Error": "States.Timeout", "Cause": "execution timed out"})
