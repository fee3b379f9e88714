"""Limits every route of the api function enforces before any work: the body's size and its encoding."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import load_event, load_function


@pytest.mark.parametrize("event_name", ["chat_completion_stateless.json", "get_session.json"])
def test_a_body_that_is_not_utf8_is_a_400_not_a_server_error(event_name, lambda_context):
    # GIVEN a request whose body is not UTF-8 (API Gateway base64-encodes it), found by schemathesis:
    #   curl -X POST -H 'Content-Type: application/json' --data-binary $'\xff\xfe' .../v1/runs  -> was a 500
    api = load_function("api")
    event = load_event(event_name)
    event.update(body=base64.b64encode(b"\xff\xfe{").decode(), isBase64Encoded=True)
    # WHEN the api function handles it
    response = api.lambda_handler(event, lambda_context)
    # THEN it is refused as a client error that says why
    assert response["statusCode"] == 400
    error = json.loads(response["body"])["error"]
    assert error.pop("request_id")  # every error names its request (the id in the logs)
    assert error == {
        "message": "The request body is not UTF-8 text.",
        "type": "invalid_request_error",
        "code": "invalid_body_encoding",
    }
