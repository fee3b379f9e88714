"""functions/api/app.py driven with API Gateway HTTP API v2 events from events/, on moto."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
import respx

from tests.conftest import load_event, load_function


@pytest.fixture
def api(aws):
    return load_function("api")


def call(api, context, event):
    response = api.lambda_handler(event, context)
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response["statusCode"], {k.lower(): v for k, v in response.get("headers", {}).items()}, body


def test_stateful_turns_replay_history_and_return_session_headers(api, lambda_context, aws):
    # GIVEN the sample stateful event (system prompt + first user message)
    status, headers, body = call(api, lambda_context, load_event("chat_completion_stateful.json"))
    assert status == 200, body
    reply = json.loads(body)
    assert reply["object"] == "chat.completion"
    assert (
        reply["choices"][0]["message"]["content"] == "[echo] received 2 messages; last: My order #1042 has not arrived."
    )
    assert headers["x-session-id"] == "support-chat-42" and headers["x-ctxgate-turn"] == "2"
    # WHEN the client sends only its next message
    follow_up = {"model": "echo", "messages": [{"role": "user", "content": "Any update?"}]}
    status, headers, body = call(api, lambda_context, load_event("chat_completion_stateful.json", body=follow_up))
    # THEN the gateway replayed system + history + new
    assert json.loads(body)["choices"][0]["message"]["content"] == "[echo] received 4 messages; last: Any update?"
    assert headers["x-ctxgate-turn"] == "4"
    usage = json.loads(body)["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_get_session_is_paginated_and_delete_removes_it(api, lambda_context, aws):
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    status, _, body = call(api, lambda_context, load_event("get_session.json"))
    page = json.loads(body)
    assert status == 200 and page["system_prompt"] == "You are a terse support agent."
    assert [t["role"] for t in page["turns"]] == ["user", "assistant"] and page["turn_count"] == 2
    assert page["has_more"] is False
    call(
        api,
        lambda_context,
        load_event(
            "chat_completion_stateful.json", body={"model": "echo", "messages": [{"role": "user", "content": "more"}]}
        ),
    )
    status, _, body = call(api, lambda_context, load_event("get_session.json"))
    page = json.loads(body)
    assert [t["turn"] for t in page["turns"]] == [1, 2] and page["has_more"] and page["next_after"] == 2
    event = load_event("get_session.json", queryStringParameters={"limit": "2", "after": "2"}, rawQueryString="")
    assert [t["turn"] for t in json.loads(call(api, lambda_context, event)[2])["turns"]] == [3, 4]

    status, _, body = call(api, lambda_context, load_event("delete_session.json"))
    assert status == 200 and json.loads(body)["deleted"] is True
    assert aws.item_count() == 0
    assert call(api, lambda_context, load_event("get_session.json"))[0] == 404
    assert call(api, lambda_context, load_event("delete_session.json"))[0] == 404


def test_stateless_base64_event_is_forwarded_and_stores_nothing(api, lambda_context, aws):
    status, headers, body = call(api, lambda_context, load_event("chat_completion_stateless.json"))
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "[echo] received 1 messages; last: Hello, gateway."
    assert "x-session-id" not in headers and aws.item_count() == 0


def test_stream_is_a_buffered_sse_body(api, lambda_context, aws):
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
    status, headers, text = call(api, lambda_context, load_event("chat_completion_stateful.json", body=body))
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert text.endswith("data: [DONE]\n\n") and headers["x-ctxgate-turn"] == "2"


BAD_INPUTS = [
    ("malformed JSON", '{"model": ', {}, 400, "invalid_json"),
    ("missing messages", {"model": "echo"}, {}, 400, "invalid_request"),
    ("empty messages", {"model": "echo", "messages": []}, {}, 400, "invalid_request"),
    ("wrong type", {"model": "echo", "messages": "hi"}, {}, 400, "invalid_request"),
    ("unknown model", {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}, {}, 404, "model_not_found"),
    (
        "bad session id",
        {"model": "echo", "messages": [{"role": "user", "content": "x"}]},
        {"x-session-id": "no spaces allowed"},
        400,
        "invalid_session_id",
    ),
    (
        "too large",
        {"model": "echo", "messages": [{"role": "user", "content": "x" * 2_200_000}]},
        {},
        413,
        "request_too_large",
    ),
]


@pytest.mark.parametrize(("name", "body", "headers", "status", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_gets_an_openai_style_4xx_and_stores_nothing(
    api, lambda_context, aws, name, body, headers, status, code
):
    event = load_event("chat_completion_stateful.json", body=body, headers=headers)
    got_status, got_headers, text = call(api, lambda_context, event)
    error = json.loads(text)["error"]
    assert got_status == status and error["code"] == code and error["type"] == "invalid_request_error"
    assert error["message"]
    assert got_headers["content-type"] == "application/json"
    assert aws.item_count() == 0 and aws.object_keys() == []


def test_provider_failure_is_a_5xx_and_leaves_no_half_written_turn(api, lambda_context, aws, models_file, monkeypatch):
    # GIVEN a session with one stored exchange, and a second model whose upstream always fails
    monkeypatch.setenv("CTXGATE_RETRY_MAX_ATTEMPTS", "2")
    models_file(
        "models:\n"
        "  - {name: echo, provider: echo, upstream_model: echo}\n"
        "  - {name: flaky, provider: openai, upstream_model: m, base_url: 'http://upstream.test/v1'}\n"
    )
    assert call(api, lambda_context, load_event("chat_completion_stateful.json"))[0] == 200
    before = aws.item_count()
    # WHEN the next turn goes to the failing model
    with respx.mock:
        upstream = respx.post("http://upstream.test/v1/chat/completions").mock(return_value=httpx.Response(500))
        body = {"model": "flaky", "messages": [{"role": "user", "content": "hello"}]}
        status, _, text = call(api, lambda_context, load_event("chat_completion_stateful.json", body=body))
    # THEN the client gets a 503 after the retries, and the session is exactly as it was
    assert status == 503 and json.loads(text)["error"]["type"] == "upstream_error"
    assert upstream.call_count == 2
    assert aws.item_count() == before
    page = json.loads(call(api, lambda_context, load_event("get_session.json", queryStringParameters=None))[2])
    assert page["turn_count"] == 2 and len(page["turns"]) == 2


def test_models_and_health(api, lambda_context, aws):
    event = load_event("get_session.json", rawPath="/v1/models", routeKey="GET /v1/models")
    event["requestContext"]["http"]["path"] = "/v1/models"
    status, _, body = call(api, lambda_context, event)
    assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["echo"]
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/healthz"
    assert json.loads(call(api, lambda_context, event)[2]) == {"status": "ok"}


def route_event(method: str, path: str, *, body=None, query=None, headers=None) -> dict:
    event = load_event(
        "get_session.json", rawPath=path, routeKey=f"{method} {path}", queryStringParameters=query, rawQueryString=""
    )
    event["requestContext"]["http"].update(method=method, path=path)
    if body is not None:
        event["body"] = json.dumps(body)
    event["headers"].update(headers or {})
    return event


def test_pins_can_be_added_listed_and_deleted_and_reach_the_context(api, lambda_context, aws):
    status, _, body = call(
        api,
        lambda_context,
        route_event("POST", "/v1/sessions/p1/pins", body={"content": "Budget is 2000 EUR, never more."}),
    )
    assert status == 201
    pin = json.loads(body)
    assert pin["object"] == "session.pin" and pin["id"].startswith("pin_")
    chat = {
        "model": "echo",
        "messages": [
            {"role": "user", "content": "Plan a trip", "pin": False},
            {"role": "user", "content": "Vegetarian food only.", "pin": True},
        ],
    }
    status, _, body = call(
        api, lambda_context, load_event("chat_completion_stateful.json", body=chat, headers={"x-session-id": "p1"})
    )
    # system pins message + the two new user messages; the pinned message is both a turn and a pin
    assert json.loads(body)["choices"][0]["message"]["content"].startswith("[echo] received 3 messages")
    listed = json.loads(call(api, lambda_context, route_event("GET", "/v1/sessions/p1/pins"))[2])["data"]
    assert [p["content"] for p in listed] == ["Budget is 2000 EUR, never more.", "Vegetarian food only."]
    status, _, body = call(
        api, lambda_context, route_event("GET", "/v1/sessions/p1/context", query={"message": "What is my budget?"})
    )
    context = json.loads(body)
    pins_section = next(s for s in context["sections"] if s["name"] == "pins")
    assert status == 200 and pins_section["messages"] == 1 and pins_section["tokens"] > 10
    status, _, _ = call(api, lambda_context, route_event("DELETE", f"/v1/sessions/p1/pins/{pin['id']}"))
    assert status == 200
    assert call(api, lambda_context, route_event("DELETE", f"/v1/sessions/p1/pins/{pin['id']}"))[0] == 404
    listed = json.loads(call(api, lambda_context, route_event("GET", "/v1/sessions/p1/pins"))[2])["data"]
    assert [p["content"] for p in listed] == ["Vegetarian food only."]


@pytest.mark.parametrize("body", [{"content": ""}, {"content": 5}, {}, "not json"])
def test_bad_pins_are_4xx(api, lambda_context, aws, body):
    event = route_event("POST", "/v1/sessions/p2/pins")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    status, _, text = call(api, lambda_context, event)
    assert status == 400 and json.loads(text)["error"]["type"] == "invalid_request_error"
    assert aws.item_count() == 0


def test_context_inspection_reports_sections_turns_breakpoints_and_budget(api, lambda_context, aws):
    system = "You are a meticulous travel planner. " * 200  # over the 1,024-token minimum a cache needs
    first = {
        "model": "echo",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "Lisbon in May, please."}],
    }
    headers = {"x-session-id": "ctx1", "x-ctxgate-budget": "4096"}
    status, response_headers, _ = call(
        api, lambda_context, load_event("chat_completion_stateful.json", body=first, headers=headers)
    )
    assert status == 200 and int(response_headers["x-ctxgate-context-tokens"]) <= 4096
    for i in range(12):
        follow = {"model": "echo", "messages": [{"role": "user", "content": f"Day {i}: museums, food and a walk."}]}
        call(api, lambda_context, load_event("chat_completion_stateful.json", body=follow, headers=headers))
    status, _, body = call(
        api, lambda_context, route_event("GET", "/v1/sessions/ctx1/context", query={"message": "What about day 3?"})
    )
    plan = json.loads(body)
    assert status == 200 and plan["object"] == "session.context"
    assert [s["name"] for s in plan["sections"]] == ["system", "pins", "summaries", "recent", "recalled", "new"]
    assert plan["budget"]["budget_tokens"] == 4096 and plan["budget"]["used_tokens"] <= plan["budget"]["input_budget"]
    assert set(plan["turns"]) == {"included", "summarised", "recalled", "evicted"}
    assert plan["breakpoints"] and plan["breakpoints"][0]["section"] == "system"
    assert all(b["tokens_before"] >= 1024 for b in plan["breakpoints"])
    assert call(api, lambda_context, route_event("GET", "/v1/sessions/nope/context"))[0] == 404


def test_a_budget_too_small_for_the_message_is_a_4xx_and_stores_nothing(api, lambda_context, aws):
    body = {"model": "echo", "messages": [{"role": "user", "content": "word " * 600}]}
    event = load_event("chat_completion_stateful.json", body=body, headers={"x-ctxgate-budget": "512"})
    status, _, text = call(api, lambda_context, event)
    assert status == 400 and json.loads(text)["error"]["code"] == "context_budget_exceeded"
    assert aws.item_count() == 0
