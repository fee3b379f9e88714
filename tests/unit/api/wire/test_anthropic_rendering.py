"""The Anthropic Messages wire format, response side (``ctxgate.api.wire.anthropic_rendering``): the ``Message``
body, the event stream and the error shape, read back by the official ``anthropic`` SDK over an in-memory
transport (no server, no socket)."""

from __future__ import annotations

import json

import anthropic
import httpx2
import pytest
from ctxgate.api.wire.anthropic_rendering import MessageEvents, error_body, message_body, message_event_stream
from ctxgate.messages import Completion, FunctionCall, Message, ToolCall, Usage
from ctxgate.providers.streaming import StreamFailed, TextDelta, replay

USAGE = Usage(prompt_tokens=120, completion_tokens=30, cached_tokens=100)
CALL = ToolCall(id="toolu_1", function=FunctionCall(name="get_weather", arguments='{"city": "Lisbon"}'))


def sdk(status: int, content_type: str, body: str) -> anthropic.Anthropic:
    """The SDK, answered by ``body`` for any request."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type}, text=body)

    # The SDK (2.x) runs on httpx2, httpx's successor; its MockTransport answers in memory.
    http = httpx2.Client(transport=httpx2.MockTransport(answer))
    return anthropic.Anthropic(api_key="k", base_url="http://gateway.test", http_client=http, max_retries=0)


def rendered(events, usage: Usage = USAGE) -> str:
    """The event stream of ``events`` (the turn's final usage ``usage``)."""
    return b"".join(message_event_stream(events, "echo", input_usage=usage, final_usage=lambda: usage)).decode()


def ask(client: anthropic.Anthropic, **extra) -> object:
    return client.messages.create(model="echo", max_tokens=64, messages=[{"role": "user", "content": "hi"}], **extra)


def test_a_text_completion_is_a_message_the_sdk_parses():
    completion = Completion(message=Message(role="assistant", content="Hello."), usage=USAGE)
    message = ask(sdk(200, "application/json", json.dumps(message_body(completion, USAGE, "echo"))))
    assert message.id.startswith("msg_") and message.model == "echo" and message.role == "assistant"
    assert [(b.type, b.text) for b in message.content] == [("text", "Hello.")]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    # the prompt's 120 tokens: 100 read from the provider's cache, 20 not
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (20, 100, 30)


def test_cache_reads_and_writes_are_apart_from_the_other_input_tokens():
    usage = Usage(prompt_tokens=420, completion_tokens=5, cached_tokens=100, cache_write_tokens=300)
    body = message_body(Completion(message=Message(role="assistant", content="x")), usage, "m")
    assert body["usage"] == {
        "input_tokens": 20,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 300,
    }


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_finish_reasons_map_to_anthropic_stop_reasons(finish, stop_reason):
    completion = Completion(message=Message(role="assistant", content="x"), finish_reason=finish)
    assert message_body(completion, Usage(), "m")["stop_reason"] == stop_reason


def test_tool_calls_are_tool_use_blocks_after_the_text():
    completion = Completion(
        message=Message(role="assistant", content="Checking.", tool_calls=[CALL]), finish_reason="tool_calls"
    )
    message = ask(sdk(200, "application/json", json.dumps(message_body(completion, USAGE, "m"))))
    assert message.content[0].text == "Checking."
    assert (message.content[1].id, message.content[1].name, message.content[1].input) == (
        "toolu_1",
        "get_weather",
        {"city": "Lisbon"},
    )
    assert message.stop_reason == "tool_use"


def test_arguments_that_are_not_a_json_object_are_kept_whole():
    call = ToolCall(id="t", function=FunctionCall(name="f", arguments="not json"))
    body = message_body(Completion(message=Message(role="assistant", tool_calls=[call])), Usage(), "m")
    assert body["content"] == [{"type": "tool_use", "id": "t", "name": "f", "input": {"_raw": "not json"}}]


def test_the_event_stream_rebuilds_the_same_message_in_the_sdks_stream_helper():
    # GIVEN a completion with a long text and a tool call, rendered as a stream
    text = "word " * 40
    completion = Completion(
        message=Message(role="assistant", content=text, tool_calls=[CALL]), finish_reason="tool_calls"
    )
    client = sdk(200, "text/event-stream", rendered(replay(completion)))
    # WHEN the SDK's messages.stream() reads it
    with client.messages.stream(model="echo", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        streamed_text = "".join(stream.text_stream)
        final = stream.get_final_message()
    # THEN the text arrived in pieces and the final message is the completion's
    assert streamed_text == text
    assert [b.type for b in final.content] == ["text", "tool_use"]
    assert final.content[1].input == {"city": "Lisbon"} and final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (20, 30)


def test_the_raw_event_sequence_follows_anthropics_order():
    completion = Completion(message=Message(role="assistant", content="Hi", tool_calls=[CALL]))
    events = list(ask(sdk(200, "text/event-stream", rendered(replay(completion))), stream=True))
    assert [(e.type, getattr(e, "index", None)) for e in events] == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[0].message.content == [] and events[0].message.stop_reason is None


def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event_the_sdk_raises():
    # GIVEN a stream that delivered some text, then failed
    failure = StreamFailed("The model's stream was interrupted.", code="stream_failed", status=502)
    body = rendered([TextDelta("Partial "), failure])
    # WHEN the SDK reads it THEN it raises with Anthropic's error type, after the text it got
    assert body.rstrip().endswith('"code":"stream_failed"}}') and "event: message_stop" not in body
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        sdk(200, "text/event-stream", body).messages.stream(
            model="echo", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as stream,
    ):
        received.extend(stream.text_stream)
    assert received == ["Partial "] and caught.value.type == "api_error"


def test_interleaved_pieces_open_a_new_block_each_time_the_kind_changes():
    events = MessageEvents("m")
    rendered = (
        events.text("a")
        + events.text("b")
        + events.tool_call(0, "t", "f", '{"x"')
        + events.tool_call(0, None, None, ":1}")
    )
    assert rendered.count("event: content_block_start") == 2 and rendered.count("event: content_block_stop") == 1
    assert rendered.count("input_json_delta") == 2


@pytest.mark.parametrize(
    ("status", "error_type", "exception"),
    [
        (400, "invalid_request_error", anthropic.BadRequestError),
        (401, "authentication_error", anthropic.AuthenticationError),
        (403, "permission_error", anthropic.PermissionDeniedError),
        (404, "not_found_error", anthropic.NotFoundError),
        (429, "rate_limit_error", anthropic.RateLimitError),
        (500, "api_error", anthropic.InternalServerError),
        (503, "overloaded_error", anthropic.APIStatusError),
    ],
)
def test_errors_take_anthropics_shape_and_the_sdk_raises_its_exception(status, error_type, exception):
    # GIVEN a ctxgate error body (OpenAI-style) in Anthropic's shape
    source = {"error": {"message": "Nope.", "type": "x", "code": "model_not_found", "request_id": "req-1"}}
    body = error_body(status, source)
    assert body == {
        "type": "error",
        "error": {"type": error_type, "message": "Nope.", "code": "model_not_found"},
        "request_id": "req-1",
    }
    # WHEN the SDK receives it THEN it raises the status's exception with Anthropic's error type
    with pytest.raises(exception) as caught:
        ask(sdk(status, "application/json", json.dumps(body)))
    assert caught.value.status_code == status and caught.value.type == error_type
