"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (api/routes/messages.py) through
functions/api/app.py, with events from events/, on moto."""

from __future__ import annotations

import json

import httpx
import respx

from tests.conftest import FakeContext, load_event
from tests.functional.api.routes.invocations import call, stored_turns

UPSTREAM = "http://upstream.test/v1"


def send(api, event: dict) -> tuple[int, dict[str, str], dict]:
    status, headers, body = call(api, FakeContext(), event)
    return status, headers, json.loads(body) if headers.get("content-type") == "application/json" else body


def message(api, body: dict | None = None, **changes) -> tuple[int, dict[str, str], dict]:
    event = load_event("messages_stateful.json", **({"body": body} if body is not None else {}), **changes)
    return send(api, event)


def count(api, body: dict | None = None, **changes) -> tuple[int, dict[str, str], dict]:
    event = load_event("messages_count_tokens.json", **({"body": body} if body is not None else {}), **changes)
    return send(api, event)


def turn(text: str) -> dict:
    return {"model": "echo", "max_tokens": 256, "messages": [{"role": "user", "content": text}]}


def test_a_session_keeps_the_conversation_and_the_client_sends_only_new_messages(api, aws):
    # GIVEN the sample stateful request (system prompt + first user message) was served
    status, headers, first = message(api)
    assert status == 200, first
    assert first["type"] == "message" and first["id"].startswith("msg_") and first["stop_reason"] == "end_turn"
    assert first["content"] == [
        {"type": "text", "text": "[echo] received 2 messages; last: My order #1042 has not arrived."}
    ]
    assert headers["x-session-id"] == "support-chat-42" and headers["x-ctxgate-turn"] == "2"
    # WHEN the client sends only its next message
    _, headers, second = message(api, turn("Any update?"))
    # THEN the model saw the system prompt, the first exchange and the new message
    assert second["content"][0]["text"] == "[echo] received 4 messages; last: Any update?"
    assert headers["x-ctxgate-turn"] == "4" and int(headers["x-ctxgate-context-tokens"]) > 0
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"] > 0


def test_a_stateless_request_stores_nothing(api, aws):
    event = load_event("messages_stateful.json")
    del event["headers"]["x-session-id"]
    status, headers, body = send(api, event)
    assert status == 200 and body["content"][0]["text"].startswith("[echo] received 2 messages")
    assert "x-session-id" not in headers and aws.item_count() == 0


def test_a_streamed_message_is_anthropics_event_sequence_and_the_turn_is_stored(api, aws):
    # GIVEN a stateful request that asks for a stream
    status, headers, text = message(api, {**turn("stream please"), "stream": True})
    # THEN the body is Anthropic's events, from message_start to message_stop, and the turn was stored
    assert status == 200 and headers["content-type"] == "text/event-stream"
    names = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert names[:3] == ["message_start", "ping", "content_block_start"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    assert "[echo] received 1 messages; last: stream please" in "".join(
        json.loads(line.removeprefix("data: ")).get("delta", {}).get("text", "")
        for line in text.splitlines()
        if line.startswith("data: ")
    )
    assert stored_turns(aws) == 2


def test_errors_are_in_anthropics_shape_with_the_request_id(api, aws):
    # GIVEN a request that breaks the schema and one for an unknown model
    event = load_event("messages_stateful.json", body={"model": "echo", "messages": [{"role": "user", "content": "x"}]})
    status, headers, body = send(api, event)
    # THEN each is an Anthropic error body, typed by status, with ctxgate's code and the request id
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == "max_tokens" and body["request_id"] == headers["request-id"]
    status, _, body = message(api, {**turn("x"), "model": "claude-nope"})
    assert status == 404 and body["error"] == {**body["error"], "type": "not_found_error", "code": "model_not_found"}
    assert stored_turns(aws) == 0


def test_the_inner_middlewares_refusals_are_in_anthropics_shape_too(api, aws, monkeypatch):
    # GIVEN an event without the authorizer's identity, and a body over the configured limit
    status, _, body = message(api, tenant=None)
    assert status == 401 and body["error"]["type"] == "authentication_error" and body["type"] == "error"
    monkeypatch.setenv("CTXGATE_MAX_REQUEST_BYTES", "1024")
    from ctxgate.bootstrap import reset

    reset()
    status, _, body = message(api, turn("x" * 2048))
    assert status == 413 and body["error"]["type"] == "request_too_large"


def test_other_routes_keep_openai_error_bodies(api, aws):
    event = load_event("chat_completion_stateful.json", body={"model": "echo"})
    status, _, body = send(api, event)
    assert status == 400 and set(body) == {"error"} and body["error"]["type"] == "invalid_request_error"


def test_a_key_limited_to_other_models_gets_a_permission_error_before_any_call(api, aws):
    event = load_event("messages_stateful.json")
    event["requestContext"]["authorizer"]["lambda"]["models"] = "gpt-only"
    status, _, body = send(api, event)
    assert status == 403 and body["error"]["type"] == "permission_error" and stored_turns(aws) == 0


def test_a_failed_model_call_leaves_no_half_written_turn(api, aws, models_file, monkeypatch):
    # GIVEN a remote model whose upstream is down
    monkeypatch.setenv("CTXGATE_RETRY_MAX_ATTEMPTS", "1")
    models_file(
        f"models:\n  - {{name: remote, provider: anthropic, upstream_model: claude-x, base_url: '{UPSTREAM}'}}\n"
    )
    with respx.mock:
        respx.post(f"{UPSTREAM}/v1/messages").mock(return_value=httpx.Response(503, text="upstream.corp busy"))
        # WHEN a stateful message is sent to it
        status, _, body = message(api, {**turn("hello"), "model": "remote"})
    # THEN the client gets Anthropic's overloaded error, nothing of the upstream, and the session has no turn
    assert status == 503 and body["error"]["type"] == "overloaded_error" and "corp" not in json.dumps(body)
    assert stored_turns(aws) == 0


def test_any_provider_serves_it_an_openai_compatible_upstream_answers_a_tool_call(api, aws, models_file):
    # GIVEN an OpenAI-compatible upstream that answers with a tool call
    models_file(f"models:\n  - {{name: gpt, provider: openai, upstream_model: gpt-x, base_url: '{UPSTREAM}'}}\n")
    reply = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49},
    }
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    with respx.mock:
        route = respx.post(f"{UPSTREAM}/chat/completions").mock(return_value=httpx.Response(200, json=reply))
        # WHEN a Messages request with an Anthropic tool definition is served by it
        status, _, body = message(
            api, {**turn("Weather in Lisbon?"), "model": "gpt", "tools": tools, "tool_choice": {"type": "any"}}
        )
    # THEN the upstream got an OpenAI function tool, and the client an Anthropic tool_use block
    sent = json.loads(route.calls.last.request.content)
    assert sent["tools"][0]["function"]["name"] == "get_weather" and sent["tool_choice"] == "required"
    assert status == 200 and body["stop_reason"] == "tool_use"
    assert body["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Lisbon"}}]
    assert body["usage"] == {
        "input_tokens": 40,
        "output_tokens": 9,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    }


def test_count_tokens_without_a_session_counts_the_request(api, aws):
    status, headers, body = count(api)
    assert status == 200 and set(body) == {"input_tokens"} and body["input_tokens"] > 0
    assert headers["request-id"] and aws.item_count() == 0


def test_count_tokens_on_a_session_is_the_context_the_next_turn_sends(api, aws):
    # GIVEN a session with one exchange
    message(api)
    follow_up = {"model": "echo", "messages": [{"role": "user", "content": "Any update?"}]}
    alone = count(api, follow_up)[2]["input_tokens"]
    # WHEN the next message is counted on the session, then sent
    counted = count(api, follow_up, headers={"x-session-id": "support-chat-42"})[2]["input_tokens"]
    _, headers, _ = message(api, {**follow_up, "max_tokens": 256})
    # THEN the count is the context that turn sent (system prompt and history included), not the message alone
    assert counted == int(headers["x-ctxgate-context-tokens"]) > alone
    assert stored_turns(aws) == 4


def test_another_tenant_neither_reaches_the_session_nor_learns_its_size(api, aws):
    # GIVEN tenant default's session
    message(api)
    # WHEN tenant b uses the same session id
    counted = count(api, tenant="b", headers={"x-session-id": "support-chat-42"})[2]["input_tokens"]
    _, _, body = message(api, turn("What did I say?"), tenant="b")
    # THEN b counts and talks in a session of its own
    assert counted == count(api)[2]["input_tokens"]
    assert body["content"][0]["text"] == "[echo] received 1 messages; last: What did I say?"


def test_a_repeated_request_with_an_idempotency_key_is_served_once(api, aws):
    key = {"idempotency-key": "msg-order-1042"}
    status, _, first = message(api, headers=key)
    _, again_headers, again = message(api, headers=key)
    assert status == 200 and again == first and again_headers["idempotent-replayed"] == "true"
    assert stored_turns(aws) == 2
    status, _, body = message(api, turn("different"), headers=key)
    assert status == 422 and body["type"] == "error" and body["error"]["code"] == "idempotency_key_reused"


def test_a_stateless_requests_cache_control_reaches_an_anthropic_upstream(api, aws, models_file):
    # GIVEN an Anthropic upstream, and a stateless request marking its long system prompt for caching
    models_file(
        f"models:\n  - {{name: claude, provider: anthropic, upstream_model: claude-x, base_url: '{UPSTREAM}'}}\n"
    )
    reply = {
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 900},
    }
    system = [{"type": "text", "text": "A long policy. " * 50, "cache_control": {"type": "ephemeral"}}]
    event = load_event("messages_stateful.json", body={**turn("hi"), "model": "claude", "system": system, "top_k": 5})
    del event["headers"]["x-session-id"]
    with respx.mock:
        route = respx.post(f"{UPSTREAM}/v1/messages").mock(return_value=httpx.Response(200, json=reply))
        # WHEN it is served
        status, _, body = send(api, event)
    # THEN the upstream got the breakpoint and top_k, and the client sees the cache write in the usage
    sent = json.loads(route.calls.last.request.content)
    assert sent["system"][-1]["cache_control"] == {"type": "ephemeral"} and sent["top_k"] == 5
    assert status == 200 and body["usage"]["cache_creation_input_tokens"] == 900 and body["usage"]["input_tokens"] == 10


def test_a_malformed_request_is_refused_even_when_its_idempotency_key_and_body_were_seen(api, aws):
    # GIVEN a request served once under an Idempotency-Key
    key = {"idempotency-key": "msg-replay-check"}
    assert message(api, headers=key)[0] == 200
    # WHEN the same key and body come with a header out of its range
    status, _, body = message(api, headers={**key, "x-ctxgate-cache-threshold": "2"})
    # THEN it is refused, not replayed
    assert status == 400 and body["error"]["param"] == "X-Ctxgate-Cache-Threshold"


def test_a_bedrock_model_serves_a_tool_round_trip_on_the_converse_wire_format(api, aws, models_file, monkeypatch):
    import boto3
    from botocore.stub import Stubber
    from ctxgate.providers.bedrock import BedrockProvider

    # GIVEN a Bedrock model (Converse, validated against the real service model by Stubber)
    models_file("models:\n  - {name: nova, provider: bedrock, upstream_model: amazon.nova-pro-v1:0}\n")
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    monkeypatch.setattr(BedrockProvider, "client", property(lambda self: client))
    expected = {
        "modelId": "amazon.nova-pro-v1:0",
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Lisbon?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}}],
            },
            {"role": "user", "content": [{"toolResult": {"toolUseId": "toolu_1", "content": [{"text": "21 C"}]}}]},
        ],
        "inferenceConfig": {"maxTokens": 256, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "get_weather",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"auto": {}},
        },
    }
    reply = {
        "output": {"message": {"role": "assistant", "content": [{"text": "21 C in Lisbon."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 30, "outputTokens": 6, "totalTokens": 36},
        "metrics": {"latencyMs": 80},
    }
    body = {
        "model": "nova",
        "max_tokens": 256,
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "auto"},
        "messages": [
            {"role": "user", "content": "Weather in Lisbon?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C"}]},
        ],
    }
    event = load_event("messages_stateful.json", body=body)
    del event["headers"]["x-session-id"]
    with Stubber(client) as stubber:
        stubber.add_response("converse", reply, expected)
        # WHEN the Messages request is served by it
        status, _, message = send(api, event)
        stubber.assert_no_pending_responses()
    # THEN Converse got the tool call and its result as toolUse/toolResult, and the client an Anthropic message
    assert status == 200 and message["content"] == [{"type": "text", "text": "21 C in Lisbon."}]
    assert message["usage"]["input_tokens"] == 30 and message["stop_reason"] == "end_turn"


def test_a_deterministic_stateless_request_is_served_from_the_response_cache_the_second_time(api, aws):
    event = load_event("messages_stateful.json", body={**turn("Capital of Portugal?"), "temperature": 0})
    del event["headers"]["x-session-id"]
    _, first_headers, first = send(api, event)
    _, second_headers, second = send(api, event)
    assert first_headers["x-ctxgate-cache"] == "miss" and second_headers["x-ctxgate-cache"] == "hit-exact"
    assert second["content"] == first["content"]


def test_a_streamed_request_with_an_idempotency_key_is_stored_whole_and_replayed_byte_for_byte(api, aws):
    key = {"idempotency-key": "msg-stream-1"}
    status, _, first = message(api, {**turn("stream once"), "stream": True}, headers=key)
    _, headers, again = message(api, {**turn("stream once"), "stream": True}, headers=key)
    assert status == 200 and again == first and headers["idempotent-replayed"] == "true"
    assert first.rstrip().endswith('data: {"type":"message_stop"}') and stored_turns(aws) == 2
