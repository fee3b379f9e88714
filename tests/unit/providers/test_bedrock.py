"""The Bedrock Converse adapter against the real service model (botocore Stubber validates every parameter)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from ctxgate.errors import UpstreamRejected
from ctxgate.messages import FunctionCall, GenerationParams, Message, ToolCall
from ctxgate.providers.bedrock import BedrockProvider
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def converse_response(text: str = "Bonjour") -> dict:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15, "cacheReadInputTokens": 4},
        "metrics": {"latencyMs": 120},
    }


@pytest.fixture
def stubbed():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def router_for(client) -> tuple[ModelRouter, list[float]]:
    sleeps: list[float] = []
    models = ModelsFile(models=[ModelConfig(name="claude", provider="bedrock", upstream_model=MODEL_ID)])
    router = ModelRouter(
        models,
        RetryPolicy(max_attempts=3, base_delay=0.01),
        provider_factory=lambda config, timeout: BedrockProvider(timeout=timeout, client=client),
        sleep=sleeps.append,
    )
    return router, sleeps


def test_converse_request_shape_and_response_mapping(stubbed):
    client, stubber = stubbed
    expected = {
        "modelId": MODEL_ID,
        "system": [{"text": "Answer in French."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather?"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Paris"}}}],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                    {"text": "Say hello"},
                ],
            },
        ],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.0, "stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "weather", "description": "w", "inputSchema": {"json": {"type": "object"}}}}
            ],
            "toolChoice": {"auto": {}},
        },
    }
    stubber.add_response("converse", converse_response(), expected)
    router, _ = router_for(client)
    messages = [
        Message(role="system", content="Answer in French."),
        Message(role="user", content="Weather?"),
        Message(
            role="assistant",
            tool_calls=[ToolCall(id="t1", function=FunctionCall(name="weather", arguments='{"city":"Paris"}'))],
        ),
        Message(role="tool", tool_call_id="t1", content="sunny"),
        Message(role="user", content="Say hello"),
    ]
    params = GenerationParams(
        max_tokens=64,
        temperature=0.0,
        stop=["END"],
        tool_choice="auto",
        tools=[
            {"type": "function", "function": {"name": "weather", "description": "w", "parameters": {"type": "object"}}}
        ],
    )
    completion, _served = router.complete("claude", messages, params)
    stubber.assert_no_pending_responses()
    assert completion.message.content == "Bonjour" and completion.finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 16 and completion.usage.cached_tokens == 4


def test_throttling_is_retried(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    stubber.add_response("converse", converse_response("after retry"))
    router, sleeps = router_for(client)
    completion, _ = router.complete("claude", [Message(role="user", content="hi")], GenerationParams())
    assert completion.message.content == "after retry" and len(sleeps) == 1


def test_validation_error_is_a_client_error(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("converse", service_error_code="ValidationException", http_status_code=400)
    router, sleeps = router_for(client)
    with pytest.raises(UpstreamRejected):
        router.complete("claude", [Message(role="user", content="hi")], GenerationParams())
    assert sleeps == []


def test_tool_use_stop_reason_maps_to_tool_calls(stubbed):
    client, stubber = stubbed
    stubber.add_response(
        "converse",
        {
            "output": {
                "message": {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "t9", "name": "lookup", "input": {"id": 3}}}],
                }
            },
            "stopReason": "tool_use",
            "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
            "metrics": {"latencyMs": 1},
        },
    )
    router, _ = router_for(client)
    completion, _ = router.complete("claude", [Message(role="user", content="hi")], GenerationParams())
    assert completion.finish_reason == "tool_calls" and completion.message.tool_calls[0].id == "t9"


def test_cache_breakpoints_become_cache_points(stubbed):
    client, stubber = stubbed
    expected = {
        "modelId": MODEL_ID,
        "system": [{"text": "system prompt"}, {"cachePoint": {"type": "default"}}, {"text": "pins"}],
        "messages": [
            {"role": "user", "content": [{"text": "old"}]},
            {"role": "assistant", "content": [{"text": "answer"}, {"cachePoint": {"type": "default"}}]},
            {"role": "user", "content": [{"text": "new"}]},
        ],
    }
    stubber.add_response("converse", converse_response(), expected)
    provider = BedrockProvider(timeout=5, client=client)
    from ctxgate.messages import ProviderRequest

    messages = [
        Message(role="system", content="system prompt"),
        Message(role="system", content="pins"),
        Message(role="user", content="old"),
        Message(role="assistant", content="answer"),
        Message(role="user", content="new"),
    ]
    provider.complete(ProviderRequest(upstream_model=MODEL_ID, messages=messages, cache_points=[0, 3]))
    stubber.assert_no_pending_responses()
