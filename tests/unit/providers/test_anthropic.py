"""The Anthropic Messages adapter against its wire format (respx)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from ctxgate.messages import FunctionCall, GenerationParams, Message, ProviderRequest, ToolCall
from ctxgate.providers.anthropic import API_VERSION, AnthropicProvider
from ctxgate.providers.base import TransientProviderError

BASE = "https://anthropic.example"


def provider() -> AnthropicProvider:
    return AnthropicProvider(base_url=BASE, api_key="ak-test", timeout=5)


def tool_history() -> list[Message]:
    return [
        Message(role="system", content="You are helpful."),
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="assistant",
            content="Checking.",
            tool_calls=[ToolCall(id="toolu_1", function=FunctionCall(name="weather", arguments='{"city": "Paris"}'))],
        ),
        Message(role="tool", tool_call_id="toolu_1", content="18C, sunny"),
        Message(role="user", content="And tomorrow?"),
    ]


@respx.mock
def test_messages_body_has_top_level_system_alternating_roles_and_tool_blocks():
    route = respx.post(f"{BASE}/v1/messages").mock(
        return_value=httpx.Response(
            200,
            json={
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "Likely rain."}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 40, "output_tokens": 5, "cache_read_input_tokens": 100},
            },
        )
    )
    params = GenerationParams(
        temperature=0.2,
        stop=["###"],
        tools=[
            {"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object"}}}
        ],
        tool_choice="required",
    )
    completion = provider().complete(ProviderRequest(upstream_model="claude-x", messages=tool_history(), params=params))
    request = route.calls.last.request
    sent = json.loads(request.content)
    assert request.headers["x-api-key"] == "ak-test" and request.headers["anthropic-version"] == API_VERSION
    assert sent["system"] == "You are helpful."
    assert sent["max_tokens"] == 1024 and sent["stop_sequences"] == ["###"] and sent["temperature"] == 0.2
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "weather",
        "input": {"city": "Paris"},
    }
    # The tool result and the next user text merge into one user turn.
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": "18C, sunny",
    }
    assert sent["messages"][2]["content"][1] == {"type": "text", "text": "And tomorrow?"}
    assert sent["tools"][0]["input_schema"] == {"type": "object"} and sent["tool_choice"] == {"type": "any"}
    assert completion.message.content == "Likely rain." and completion.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 140 and completion.usage.cached_tokens == 100


@respx.mock
def test_tool_use_response_becomes_openai_tool_calls():
    respx.post(f"{BASE}/v1/messages").mock(
        return_value=httpx.Response(
            200,
            json={
                "type": "message",
                "content": [{"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Oslo"}}],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        )
    )
    completion = provider().complete(ProviderRequest(upstream_model="claude-x", messages=tool_history()[:2]))
    assert completion.finish_reason == "tool_calls"
    call = completion.message.tool_calls[0]
    assert call.id == "toolu_2" and json.loads(call.function.arguments) == {"city": "Oslo"}


@respx.mock
def test_overloaded_is_transient_with_retry_after():
    respx.post(f"{BASE}/v1/messages").mock(return_value=httpx.Response(529, headers={"retry-after": "7"}))
    with pytest.raises(TransientProviderError) as caught:
        provider().complete(ProviderRequest(upstream_model="c", messages=[Message(role="user", content="x")]))
    assert caught.value.retry_after == 7.0


@respx.mock
def test_cache_breakpoints_become_cache_control_on_system_blocks_and_the_last_history_block():
    route = respx.post(f"{BASE}/v1/messages").mock(
        return_value=httpx.Response(
            200,
            json={
                "type": "message",
                "content": [{"type": "text", "text": "ok"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        )
    )
    messages = [
        Message(role="system", content="system prompt"),
        Message(role="system", content="Pinned constraints: ..."),
        Message(role="user", content="old question"),
        Message(role="assistant", content="old answer"),
        Message(role="user", content="new question"),
    ]
    provider().complete(ProviderRequest(upstream_model="claude-x", messages=messages, cache_points=[0, 1, 3]))
    sent = json.loads(route.calls.last.request.content)
    assert sent["system"] == [
        {"type": "text", "text": "system prompt", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Pinned constraints: ...", "cache_control": {"type": "ephemeral"}},
    ]
    assert sent["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in sent["messages"][2]["content"][-1]
    marked = [b for m in sent["messages"] for b in m["content"] if "cache_control" in b]
    assert len(marked) + len(sent["system"]) <= 4


@respx.mock
def test_cache_writes_are_reported_apart_from_cache_reads():
    usage = {"input_tokens": 20, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 300}
    respx.post(f"{BASE}/v1/messages").mock(
        return_value=httpx.Response(
            200, json={"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": usage}
        )
    )
    completion = provider().complete(ProviderRequest(upstream_model="claude-x", messages=tool_history()))
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.cached_tokens, completion.usage.cache_write_tokens) == (
        420,
        100,
        300,
    )


@respx.mock
def test_top_k_is_the_one_client_extra_forwarded():
    route = respx.post(f"{BASE}/v1/messages").mock(
        return_value=httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"})
    )
    params = GenerationParams(extra={"top_k": 40, "user": "u-1", "parallel_tool_calls": False})
    provider().complete(ProviderRequest(upstream_model="claude-x", messages=tool_history(), params=params))
    sent = json.loads(route.calls.last.request.content)
    assert sent["top_k"] == 40 and "user" not in sent and "parallel_tool_calls" not in sent
