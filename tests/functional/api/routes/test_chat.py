"""``POST /v1/chat/completions`` (api/routes/chat.py) through functions/api/app.py, with events from events/,
on moto."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.conftest import load_event
from tests.functional.api.routes.invocations import call


def test_a_stateful_turn_returns_the_reply_and_session_headers(api, lambda_context, aws):
    # GIVEN the sample stateful event (system prompt + first user message)
    event = load_event("chat_completion_stateful.json")
    # WHEN it is sent to the api function
    status, headers, body = call(api, lambda_context, event)
    # THEN the reply is a chat completion of both messages, and the headers name the session and its turn
    assert status == 200, body
    reply = json.loads(body)
    assert reply["object"] == "chat.completion"
    assert (
        reply["choices"][0]["message"]["content"] == "[echo] received 2 messages; last: My order #1042 has not arrived."
    )
    assert headers["x-session-id"] == "support-chat-42" and headers["x-ctxgate-turn"] == "2"


def test_a_follow_up_turn_replays_system_prompt_and_history(api, lambda_context, aws):
    # GIVEN a session that already holds the sample stateful exchange
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    # WHEN the client sends only its next message
    follow_up = {"model": "echo", "messages": [{"role": "user", "content": "Any update?"}]}
    _, headers, body = call(api, lambda_context, load_event("chat_completion_stateful.json", body=follow_up))
    # THEN the gateway replayed system + history + new, and the usage adds up
    assert json.loads(body)["choices"][0]["message"]["content"] == "[echo] received 4 messages; last: Any update?"
    assert headers["x-ctxgate-turn"] == "4"
    usage = json.loads(body)["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_stateless_base64_event_is_forwarded_and_stores_nothing(api, lambda_context, aws):
    # GIVEN the sample stateless event, whose body is base64-encoded and which names no session
    event = load_event("chat_completion_stateless.json")
    # WHEN it is sent to the api function
    status, headers, body = call(api, lambda_context, event)
    # THEN the decoded message reached the model, and no session header or item exists
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "[echo] received 1 messages; last: Hello, gateway."
    assert "x-session-id" not in headers and aws.item_count() == 0


def test_stream_is_a_buffered_sse_body(api, lambda_context, aws):
    # GIVEN a stateful request that asks for a stream
    body = {"model": "echo", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
    # WHEN it is sent to the api function
    status, headers, text = call(api, lambda_context, load_event("chat_completion_stateful.json", body=body))
    # THEN the whole SSE stream comes back in one body, ending in [DONE], and the turn was still stored
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
    # GIVEN a stateful chat event carrying one kind of bad input
    event = load_event("chat_completion_stateful.json", body=body, headers=headers)
    # WHEN it is sent to the api function
    got_status, got_headers, text = call(api, lambda_context, event)
    # THEN the client gets the expected 4xx with an OpenAI-style JSON error, and nothing reached DynamoDB or S3
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


def test_a_budget_too_small_for_the_message_is_a_4xx_and_stores_nothing(api, lambda_context, aws):
    # GIVEN a new session whose x-ctxgate-budget (512 tokens) cannot hold its first message (~600 tokens)
    body = {"model": "echo", "messages": [{"role": "user", "content": "word " * 600}]}
    event = load_event("chat_completion_stateful.json", body=body, headers={"x-ctxgate-budget": "512"})
    # WHEN it is sent to the api function
    status, _, text = call(api, lambda_context, event)
    # THEN the client gets a 400 context_budget_exceeded, and nothing was stored
    assert status == 400 and json.loads(text)["error"]["code"] == "context_budget_exceeded"
    assert aws.item_count() == 0
