"""Tenant isolation through functions/api on moto: tenant B, authenticated, aims at tenant A's sessions, pins,
context plans, runs and cache entries. Every attempt must look exactly like aiming at an id that does not exist
(a 404 with the same body, a fresh object of B's own, or a cache miss), and A's data must be unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import load_event, load_function

A_SESSION = "trip-42"
NEVER = "never-existed-1"


@pytest.fixture
def api(aws):
    return load_function("api")


def request(api, context, tenant: str, method: str, path: str, *, body: Any = None, headers=None, query=None):
    event = load_event(
        "get_session.json", tenant=tenant, rawPath=path, routeKey=f"{method} {path}", queryStringParameters=query
    )
    event["requestContext"]["http"].update(method=method, path=path)
    event["body"] = json.dumps(body) if body is not None else None
    event["headers"].update(headers or {})
    response = api.lambda_handler(event, context)
    headers_out = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    return response["statusCode"], headers_out, json.loads(response["body"])


def chat(api, context, tenant: str, content: str, session: str | None = None):
    headers = {"x-session-id": session} if session else {}
    body = {"model": "echo", "temperature": 0, "messages": [{"role": "user", "content": content}]}
    return request(api, context, tenant, "POST", "/v1/chat/completions", body=body, headers=headers)


def same_as_missing(api, context, method: str, path_of: str, real_id: str, fake_id: str, **kwargs: Any) -> None:
    """B's answer for A's id equals B's answer for an id nobody ever used (the id in the message aside)."""
    status, _, body = request(api, context, "tenant-b", method, path_of.format(real_id), **kwargs)
    missing_status, _, missing = request(api, context, "tenant-b", method, path_of.format(fake_id), **kwargs)
    assert status == missing_status == 404
    assert json.dumps(body).replace(real_id, fake_id) == json.dumps(missing)


def a_snapshot(api, context, run_id: str) -> dict[str, Any]:
    return {
        "session": request(api, context, "tenant-a", "GET", f"/v1/sessions/{A_SESSION}")[2],
        "pins": request(api, context, "tenant-a", "GET", f"/v1/sessions/{A_SESSION}/pins")[2],
        "run": request(api, context, "tenant-a", "GET", f"/v1/runs/{run_id}")[2],
    }


def test_tenant_b_can_neither_see_nor_change_anything_of_tenant_a(api, lambda_context):
    # GIVEN tenant A's session with a pin, a queued run, and a cached answer
    assert chat(api, lambda_context, "tenant-a", "My passport number is X123.", A_SESSION)[0] == 200
    status, _, pin = request(
        api, lambda_context, "tenant-a", "POST", f"/v1/sessions/{A_SESSION}/pins", body={"content": "Budget 2000."}
    )
    assert status == 201
    status, _, run = request(
        api,
        lambda_context,
        "tenant-a",
        "POST",
        "/v1/runs",
        body={"model": "echo", "input": [{"role": "user", "content": "plan"}]},
    )
    assert status == 202
    assert chat(api, lambda_context, "tenant-a", "What are your opening hours?")[1]["x-ctxgate-cache"] == "miss"
    before = a_snapshot(api, lambda_context, run["id"])

    # WHEN tenant B reads, lists, inspects, deletes and cancels A's objects
    # THEN each answer is the 404 of an id that never existed
    same_as_missing(api, lambda_context, "GET", "/v1/sessions/{}", A_SESSION, NEVER)
    same_as_missing(api, lambda_context, "GET", "/v1/sessions/{}/pins", A_SESSION, NEVER)
    same_as_missing(api, lambda_context, "GET", "/v1/sessions/{}/context", A_SESSION, NEVER)
    same_as_missing(api, lambda_context, "DELETE", f"/v1/sessions/{A_SESSION}/pins/{{}}", pin["id"], "pin_0000")
    same_as_missing(api, lambda_context, "DELETE", "/v1/sessions/{}", A_SESSION, NEVER)
    same_as_missing(api, lambda_context, "GET", "/v1/runs/{}", run["id"], "run_00000000000000000000000000000000")
    same_as_missing(
        api, lambda_context, "POST", "/v1/runs/{}/cancel", run["id"], "run_00000000000000000000000000000000"
    )

    # WHEN B continues A's session and pins to it
    # THEN B gets a session of its own (no history of A's), exactly as for an unused id
    status, headers, reply = chat(api, lambda_context, "tenant-b", "What is my passport number?", A_SESSION)
    assert status == 200 and headers["x-ctxgate-turn"] == "2"
    assert reply["choices"][0]["message"]["content"] == "[echo] received 1 messages; last: What is my passport number?"
    status, _, _ = request(
        api, lambda_context, "tenant-b", "POST", f"/v1/sessions/{A_SESSION}/pins", body={"content": "B's pin"}
    )
    assert status == 201

    # WHEN B asks what A's cached answer answers
    # THEN it is a miss for B, while A still hits
    assert chat(api, lambda_context, "tenant-b", "What are your opening hours?")[1]["x-ctxgate-cache"] == "miss"
    assert chat(api, lambda_context, "tenant-a", "What are your opening hours?")[1]["x-ctxgate-cache"] == "hit-exact"

    # AND A's session, pins and run are exactly as they were
    assert a_snapshot(api, lambda_context, run["id"]) == before
    assert before["run"]["status"] == "queued" and [p["content"] for p in before["pins"]["data"]] == ["Budget 2000."]


def test_a_request_without_an_authorizer_context_is_refused_with_401(api, lambda_context):
    # GIVEN an event that reached the function without the authorizer's context (a misconfigured route)
    event = load_event("get_session.json", tenant=None)
    # WHEN the api function handles it
    response = api.lambda_handler(event, lambda_context)
    # THEN it refuses with the OpenAI-style 401, and /healthz stays public
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "invalid_api_key"
    health = load_event("get_session.json", tenant=None, rawPath="/healthz", routeKey="GET /healthz")
    health["requestContext"]["http"]["path"] = "/healthz"
    assert api.lambda_handler(health, lambda_context)["statusCode"] == 200
