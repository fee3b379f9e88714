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
