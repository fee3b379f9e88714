"""The Chat Completions wire format (``ctxgate.api.wire.chat_completions``): request parsing and SSE rendering."""

from __future__ import annotations

import json

import pytest
from ctxgate.api.wire.chat_completions import completion_stream, parse_chat_request
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, Message, Usage


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


def test_stream_is_sse_chunks_ending_in_done():
    completion = Completion(message=Message(role="assistant", content="x" * 150), finish_reason="stop")
    sse = completion_stream(completion, Usage(prompt_tokens=3, completion_tokens=4), "echo", include_usage=True)
    events = [e for e in sse.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == "x" * 150
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["total_tokens"] == 7
