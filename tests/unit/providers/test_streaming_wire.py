"""Each adapter's ``stream()`` on its provider's real streaming wire format: OpenAI-compatible and Anthropic SSE
through respx, Bedrock ConverseStream as botocore's binary event stream through Stubber; and the router's rule that
retries and fallbacks happen only before the first event."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from ctxgate.errors import ProviderFailure
from ctxgate.messages import GenerationParams, Message, ProviderRequest, Usage
from ctxgate.providers.anthropic import AnthropicProvider
from ctxgate.providers.base import TransientProviderError
from ctxgate.providers.openai import OpenAIProvider
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.providers.streaming import (
    CompletionBuilder,
    Finish,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from ctxgate.retry import RetryPolicy

OPENAI = "https://openai.example/v1"
ANTHROPIC = "https://anthropic.example"
WEATHER_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


def request(**params) -> ProviderRequest:
    return ProviderRequest(
        upstream_model="m", messages=[Message(role="user", content="Hi")], params=GenerationParams(**params)
    )


def sse(*events: tuple[str | None, object]) -> bytes:
    lines = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        lines.append(f"{head}data: {data if isinstance(data, str) else json.dumps(data)}\n\n")
    return "".join(lines).encode()


def stream_response(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def openai_chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


# -- OpenAI-compatible SSE ------------------------------------------------------------------------------------------


@respx.mock
def test_openai_stream_asks_for_usage_and_yields_text_usage_then_finish():
    body = sse(
        (None, openai_chunk({"role": "assistant", "content": ""})),
        (None, openai_chunk({"content": "Hel"})),
        (None, openai_chunk({"content": "lo"})),
        (None, openai_chunk({}, "stop")),
        (None, {"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}),
        (None, "[DONE]"),
    )
    route = respx.post(f"{OPENAI}/chat/completions").mock(return_value=stream_response(body))

    events = list(OpenAIProvider(base_url=OPENAI, api_key="k", timeout=5).stream(request()))

    sent = json.loads(route.calls.last.request.content)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        UsageReport(Usage(prompt_tokens=9, completion_tokens=2)),
        Finish("stop"),
    ]


@respx.mock
def test_openai_tool_call_deltas_reassemble_into_the_call():
    body = sse(
        (
            None,
            openai_chunk(
                {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": ""}}]}
            ),
        ),
        (None, openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})),
        (None, openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]})),
        (None, openai_chunk({}, "tool_calls")),
        (None, "[DONE]"),
    )
    respx.post(f"{OPENAI}/chat/completions").mock(return_value=stream_response(body))
    builder = CompletionBuilder()

    for event in OpenAIProvider(base_url=OPENAI, api_key="k", timeout=5).stream(request(tools=[WEATHER_TOOL])):
        builder.add(event)

    completion = builder.build()
    assert completion.finish_reason == "tool_calls"
    (call,) = completion.message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_1",
        "weather",
        {"city": "Paris"},
    )


@respx.mock
def test_openai_stream_cut_off_before_done_raises_transient():
    respx.post(f"{OPENAI}/chat/completions").mock(
        return_value=stream_response(sse((None, openai_chunk({"content": "Hel"}))))
    )
    events = OpenAIProvider(base_url=OPENAI, api_key="k", timeout=5).stream(request())

    assert next(events) == TextDelta("Hel")
    with pytest.raises(TransientProviderError):
        next(events)


# -- Anthropic Messages SSE -----------------------------------------------------------------------------------------

ANTHROPIC_TOOL_STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {"id": "msg_1", "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}},
        },
    ),
    ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city": '}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 17}}),
    ("message_stop", {"type": "message_stop"}),
)


@respx.mock
def test_anthropic_sse_maps_text_tool_use_usage_and_stop_reason():
    route = respx.post(f"{ANTHROPIC}/v1/messages").mock(return_value=stream_response(ANTHROPIC_TOOL_STREAM))

    events = list(AnthropicProvider(base_url=ANTHROPIC, api_key="ak", timeout=5).stream(request(tools=[WEATHER_TOOL])))

    assert json.loads(route.calls.last.request.content)["stream"] is True
    assert events == [
        TextDelta("Let me "),
        TextDelta("check."),
        ToolCallDelta(0, "toolu_1", "weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        UsageReport(Usage(prompt_tokens=30, completion_tokens=17, cached_tokens=5)),
        Finish("tool_calls"),
    ]


@respx.mock
def test_anthropic_error_event_mid_stream_raises_transient():
    body = sse(
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        ),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    respx.post(f"{ANTHROPIC}/v1/messages").mock(return_value=stream_response(body))
    events = AnthropicProvider(base_url=ANTHROPIC, api_key="ak", timeout=5).stream(request())

    assert next(events) == TextDelta("Hi")
    with pytest.raises(TransientProviderError):
        next(events)


# -- the router: retries and fallbacks only before the first event -------------------------------------------------


def openai_router() -> ModelRouter:
    models = ModelsFile(
        models=[
            ModelConfig(name="main", provider="openai", upstream_model="m", base_url=OPENAI, fallbacks=["backup"]),
            ModelConfig(name="backup", provider="openai", upstream_model="m", base_url="https://backup.example/v1"),
        ]
    )
    return ModelRouter(models, RetryPolicy(max_attempts=2, base_delay=0.0), sleep=lambda _: None)


@respx.mock
def test_a_stream_failing_before_its_first_event_is_retried_then_falls_back():
    primary = respx.post(f"{OPENAI}/chat/completions").mock(return_value=httpx.Response(503, text="busy"))
    respx.post("https://backup.example/v1/chat/completions").mock(
        return_value=stream_response(sse((None, openai_chunk({"content": "ok"}, "stop")), (None, "[DONE]")))
    )

    events, served = openai_router().stream("main", [Message(role="user", content="Hi")], GenerationParams())

    assert (primary.call_count, served.name) == (2, "backup")
    assert list(events) == [TextDelta("ok"), Finish("stop")]


@respx.mock
def test_a_failure_after_the_first_event_is_raised_to_the_consumer_not_retried():
    route = respx.post(f"{OPENAI}/chat/completions").mock(
        return_value=stream_response(sse((None, openai_chunk({"content": "partial"}))))
    )
    events, served = openai_router().stream("main", [Message(role="user", content="Hi")], GenerationParams())

    assert next(events) == TextDelta("partial")
    with pytest.raises(TransientProviderError):
        next(events)
    assert (route.call_count, served.name) == (1, "main")


@respx.mock
def test_every_candidate_failing_before_the_first_event_is_a_provider_failure():
    respx.post(f"{OPENAI}/chat/completions").mock(return_value=httpx.Response(500))
    respx.post("https://backup.example/v1/chat/completions").mock(return_value=httpx.Response(500))

    with pytest.raises(ProviderFailure):
        openai_router().stream("main", [Message(role="user", content="Hi")], GenerationParams())
