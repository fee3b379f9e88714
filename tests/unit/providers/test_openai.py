"""The OpenAI adapter against its wire format (respx), and the router's retries, Retry-After and fallbacks."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from ctxgate.errors import ProviderFailure, UpstreamRejected
from ctxgate.messages import FunctionCall, GenerationParams, Message, ProviderRequest, ToolCall
from ctxgate.providers.base import ProviderRejected, TransientProviderError
from ctxgate.providers.openai import OpenAIProvider
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

PRIMARY = "https://primary.example/v1"
BACKUP = "https://backup.example/v1"


def reply(content: str = "hello", **extra) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 2,
            "total_tokens": 13,
            "prompt_tokens_details": {"cached_tokens": 8},
        },
        **extra,
    }


def router(sleeps: list[float], *, attempts: int = 3) -> ModelRouter:
    models = ModelsFile(
        models=[
            ModelConfig(
                name="main",
                provider="openai",
                upstream_model="gpt-x",
                base_url=PRIMARY,
                api_key_env="TEST_OPENAI_KEY",
                fallbacks=["backup"],
            ),
            ModelConfig(name="backup", provider="openai", upstream_model="gpt-y", base_url=BACKUP),
        ]
    )
    return ModelRouter(models, RetryPolicy(max_attempts=attempts, base_delay=0.01, deadline=60), sleep=sleeps.append)


@respx.mock
def test_request_body_and_headers_follow_the_chat_completions_wire_format(monkeypatch):
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    route = respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(200, json=reply()))
    params = GenerationParams(
        temperature=0,
        seed=3,
        stop=["END"],
        extra={"reasoning_effort": "low"},
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    )
    messages = [Message(role="system", content="s"), Message(role="user", content="hi")]
    completion, served = router([]).complete("main", messages, params)
    sent = json.loads(route.calls.last.request.content)
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"
    assert sent["model"] == "gpt-x" and sent["temperature"] == 0 and sent["seed"] == 3 and sent["stop"] == ["END"]
    assert sent["reasoning_effort"] == "low" and sent["tools"][0]["function"]["name"] == "lookup"
    assert sent["messages"] == [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]
    assert served.name == "main" and completion.message.content == "hello"
    assert completion.usage is not None and completion.usage.cached_tokens == 8


@respx.mock
def test_tool_calls_round_trip():
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": 1}'}}
    body = reply()
    body["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [tool_call]}
    body["choices"][0]["finish_reason"] = "tool_calls"
    respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(200, json=body))
    provider = OpenAIProvider(base_url=PRIMARY, api_key=None, timeout=5)
    history = [
        Message(role="user", content="find 1"),
        Message(role="assistant", tool_calls=[ToolCall(id="call_0", function=FunctionCall(name="lookup"))]),
        Message(role="tool", tool_call_id="call_0", content="nothing"),
    ]
    completion = provider.complete(ProviderRequest(upstream_model="gpt-x", messages=history))
    assert completion.finish_reason == "tool_calls"
    assert completion.message.tool_calls is not None and completion.message.tool_calls[0].function.name == "lookup"


@respx.mock
def test_429_with_retry_after_is_honoured_then_succeeds():
    route = respx.post(f"{PRIMARY}/chat/completions").mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "2"}, json={"error": {}}),
            httpx.Response(200, json=reply()),
        ]
    )
    sleeps: list[float] = []
    _completion, served = router(sleeps).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert route.call_count == 2 and served.name == "main"
    assert sleeps == [2.0]


@respx.mock
def test_5xx_exhausts_retries_then_falls_back_in_order():
    primary = respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(503, text="overloaded"))
    backup = respx.post(f"{BACKUP}/chat/completions").mock(return_value=httpx.Response(200, json=reply("from backup")))
    sleeps: list[float] = []
    completion, served = router(sleeps).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert primary.call_count == 3 and backup.call_count == 1 and len(sleeps) == 2
    assert served.name == "backup" and completion.message.content == "from backup"
    assert json.loads(backup.calls.last.request.content)["model"] == "gpt-y"


@respx.mock
def test_timeouts_are_retried():
    respx.post(f"{PRIMARY}/chat/completions").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.ConnectTimeout("down"), httpx.Response(200, json=reply())]
    )
    _, served = router([]).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert served.name == "main"


@respx.mock
def test_every_candidate_failing_is_a_503_after_all_attempts():
    respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(500))
    respx.post(f"{BACKUP}/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ProviderFailure) as caught:
        router([]).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert caught.value.status == 503 and caught.value.to_body()["error"]["type"] == "upstream_error"


@respx.mock
def test_auth_failure_is_not_retried_but_falls_back():
    primary = respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(401))
    respx.post(f"{BACKUP}/chat/completions").mock(return_value=httpx.Response(200, json=reply()))
    _, served = router([]).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert primary.call_count == 1 and served.name == "backup"


@respx.mock
def test_a_rejected_request_is_a_client_error_without_fallback():
    respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(400, json={"error": "context"}))
    backup = respx.post(f"{BACKUP}/chat/completions").mock(return_value=httpx.Response(200, json=reply()))
    with pytest.raises(UpstreamRejected) as caught:
        router([]).complete("main", [Message(role="user", content="hi")], GenerationParams())
    assert caught.value.status == 400 and backup.call_count == 0


@pytest.mark.parametrize(("status", "error"), [(422, ProviderRejected), (502, TransientProviderError)])
@respx.mock
def test_adapter_classifies_statuses(status, error):
    provider = OpenAIProvider(base_url=PRIMARY, api_key=None, timeout=5)
    request = ProviderRequest(upstream_model="m", messages=[Message(role="user", content="x")])
    respx.post(f"{PRIMARY}/chat/completions").mock(return_value=httpx.Response(status))
    with pytest.raises(error):
        provider.complete(request)
