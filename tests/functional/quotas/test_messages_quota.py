"""Quotas on ``POST /v1/messages``: the key's windows apply as on chat completions, refusals in Anthropic's shape."""

from __future__ import annotations

import json

from tests.conftest import load_event
from tests.functional.api.routes.invocations import call
from tests.functional.quotas.conftest import as_key


def message_event() -> dict:
    body = {"model": "echo", "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
    event = load_event("messages_stateful.json", body=body)
    del event["headers"]["x-session-id"]
    return event


def test_a_key_over_its_requests_per_minute_gets_an_anthropic_rate_limit_error(api, lambda_context, aws):
    # GIVEN a key allowed one request per minute, which has used it on the Messages API
    ok = call(api, lambda_context, as_key(message_event(), rpm=1, tpm=100_000))
    # WHEN a second request comes within the minute
    status, headers, body = call(api, lambda_context, as_key(message_event(), rpm=1, tpm=100_000))
    # THEN it is refused before any model call, with Retry-After and Anthropic's rate_limit_error
    assert ok[0] == 200 and ok[1]["x-ratelimit-remaining-requests"] == "0"
    error = json.loads(body)
    assert status == 429 and "retry-after" in headers
    assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
