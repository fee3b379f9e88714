"""The Chat Completions wire format (``ctxgate.api.wire.chat_completions``): request parsing and SSE rendering."""

from __future__ import annotations

import json

import pytest
from ctxgate.api.wire.chat_completions import completion_chunks, parse_chat_request
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, Message, Usage
from ctxgate.providers.streaming import Finish, StreamFailed, TextDelta, ToolCallDelta, replay


def body(**fields) -> str:
    return json.dumps({"model": "echo", "messages": [{"role": "user", "content": "hi"}], **fields})


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        ("", "invalid_json", None),
        ("[]", "invalid_request", None),
        (json.dumps({"model": "echo"}), "invalid_request", "messages"),
        (json.dumps({"model": "echo", "messages": []}), "invalid_request", "messages"),
        (json.dumps({"messages": [{"role": "user", "content": "x"}]}), "invalid_request", "model"),
        (json.dumps({"model": 7, "messages": [{"role": "user", "content": "x"}]}), "invalid_request", "model"),
        (body(temperature="hot"), "invalid_request", "temperature"),
        (body(temperature=3), "invalid_request", "temperature"),
        (body(max_tokens=0), "invalid_request", "max_tokens"),
        (body(n=2), "invalid_request", "n"),
        (body(stream="yes"), "invalid_request", "stream"),
        (json.dumps({"model": "echo", "messages": [{"role": "wizard", "content": "x"}]}), "invalid_request", None),
        (json.dumps({"model": "echo", "messages": [{"role": "user", "content": ""}]}), "invalid_request", "messages"),
        (json.dumps({"model": "echo", "messages": [{"role": "user", "content": 5}]}), "invalid_request", None),
        (json.dumps({"model": "echo", "messages": [{"role": "tool", "content": "r"}]}), "invalid_request", "messages"),
    ],
)
def test_bad_requests_are_invalid_request_errors(raw, code, param):
    with pytest.raises(InvalidRequest) as caught:
        parse_chat_request(raw)
    error = caught.value
    assert error.status == 400 and error.code == code
    if param is not None:
        assert error.param is not None and error.param.startswith(param)
    assert set(error.to_body()["error"]) >= {"message", "type", "code"}


def test_unknown_parameters_are_forwarded_and_gateway_ones_are_not():
    request = parse_chat_request(
        body(reasoning_effort="low", logit_bias={"50256": -100}, stream=True, stream_options={"include_usage": True})
    )
    params = request.params()
    assert params.extra == {"reasoning_effort": "low", "logit_bias": {"50256": -100}}
    assert request.stream is True


def test_stop_string_becomes_a_list_and_max_completion_tokens_is_the_output_limit():
    params = parse_chat_request(body(stop="END", max_completion_tokens=50)).params()
    assert params.stop == ["END"]
    assert params.output_limit() == 50


def rendered(events, *, include_usage: bool = True, usage: Usage | None = None) -> list[bytes]:
    return list(completion_chunks(events, "echo", include_usage=include_usage, final_usage=lambda: usage))


def test_stream_is_one_sse_chunk_per_event_ending_in_usage_and_done():
    completion = Completion(message=Message(role="assistant", content="one two three"), finish_reason="stop")
    body = rendered(replay(completion), usage=Usage(prompt_tokens=3, completion_tokens=4))
    assert body[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(e.decode().removeprefix("data: ")) for e in body[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "echo" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == ["one ", "two ", "three"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_tool_call_deltas_carry_id_type_and_name_only_on_their_first_chunk():
    body = rendered([ToolCallDelta(0, "call_1", "weather"), ToolCallDelta(0, arguments="{}"), Finish("tool_calls")])
    deltas = [json.loads(e.decode().removeprefix("data: "))["choices"][0]["delta"] for e in body[1:3]]
    assert deltas == [
        {
            "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"arguments": "", "name": "weather"}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]},
    ]


def test_a_failure_event_ends_the_body_with_an_error_object_and_no_done():
    body = rendered([TextDelta("Hel"), StreamFailed("interrupted", code="stream_failed")])
    assert json.loads(body[-1].decode().removeprefix("data: ")) == {
        "error": {"message": "interrupted", "type": "api_error", "code": "stream_failed"}
    }
    assert b"data: [DONE]\n\n" not in body
