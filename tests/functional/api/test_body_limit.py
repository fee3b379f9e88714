"""Every route refuses a body over the limit (413) before it parses it or calls anything."""

from __future__ import annotations

import json

import pytest

from tests.conftest import load_event, load_function

ROUTES = [
    ("POST", "/v1/chat/completions", "POST /v1/chat/completions"),
    ("POST", "/v1/sessions/s1/pins", "POST /v1/sessions/{session_id}/pins"),
    ("POST", "/v1/runs", "POST /v1/runs"),
    ("POST", "/v1/runs/run_1/cancel", "POST /v1/runs/{run_id}/cancel"),
]


@pytest.mark.parametrize(("method", "path", "route_key"), ROUTES, ids=[r[1] for r in ROUTES])
def test_a_body_over_the_limit_gets_413_on_every_route(aws, lambda_context, monkeypatch, method, path, route_key):
    # GIVEN a gateway whose body limit is 1 KB
    monkeypatch.setenv("CTXGATE_MAX_REQUEST_BYTES", "1024")
    from ctxgate.bootstrap import reset

    reset()
    api = load_function("api")
    event = load_event("get_session.json", body=json.dumps({"content": "x" * 2048}))
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["pathParameters"] = None
    # WHEN the oversized request arrives
    response = api.lambda_handler(event, lambda_context)
    # THEN it is refused with an OpenAI-style 413, and nothing was stored
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"]["code"] == "request_too_large"
    assert aws.item_count() == 0
