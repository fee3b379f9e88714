"""Upstreams receive only the request fields each adapter knows: a client's unknown or withheld fields, sent in a
Chat Completions body, never reach OpenAI (respx), Anthropic (respx) or Bedrock (Stubber, exact parameters)."""

from __future__ import annotations

import json

import boto3
import httpx
import respx
from botocore.stub import Stubber
from ctxgate.api.wire.chat_completions import parse_chat_request
from ctxgate.messages import ProviderRequest
from ctxgate.providers.anthropic import AnthropicProvider
from ctxgate.providers.bedrock import BedrockProvider
from ctxgate.providers.openai import OpenAIProvider

OPENAI = "https://openai.example/v1"
ANTHROPIC = "https://anthropic.example"
UNKNOWN = {"x_internal_route": "admin", "callback_url": "http://169.254.169.254/"}
WITHHELD = {"store": True, "metadata": {"k": "v"}, "service_tier": "priority", "web_search_options": {}}
KNOWN = {"reasoning_effort": "low", "presence_penalty": 0.5, "user": "u-1"}
TOOL = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object"}, "x_secret": "s"},
    "x_tool_extra": 1,
}


def client_request() -> ProviderRequest:
    """A Chat Completions body as a client sends it, carrying known, withheld and unknown fields."""
    body = {
        "model": "main",
        "messages": [{"role": "user", "content": "hi", "x_message_extra": 1}],
        "temperature": 0,
        "tools": [TOOL],
        **KNOWN,
        **WITHHELD,
        **UNKNOWN,
    }
    wire = parse_chat_request(json.dumps(body))
    return ProviderRequest(upstream_model="up", messages=wire.chat_messages(), params=wire.params())


def openai_reply() -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


@respx.mock
def test_openai_receives_documented_parameters_only():
    # GIVEN a client body with known, withheld and unknown fields
    route = respx.post(f"{OPENAI}/chat/completions").mock(return_value=httpx.Response(200, json=openai_reply()))
    # WHEN the OpenAI adapter sends it
    OpenAIProvider(base_url=OPENAI, api_key=None, timeout=5).complete(client_request())
    # THEN the upstream body holds exactly the allowlisted fields
    sent = json.loads(route.calls.last.request.content)
    assert set(sent) == {"model", "messages", "temperature", "tools", *KNOWN}
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert sent["tools"] == [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@respx.mock
def test_anthropic_receives_messages_api_fields_only():
    route = respx.post(f"{ANTHROPIC}/v1/messages").mock(
        return_value=httpx.Response(200, json={"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn"})
    )
    AnthropicProvider(base_url=ANTHROPIC, api_key="k", timeout=5).complete(client_request())
    sent = json.loads(route.calls.last.request.content)
    assert set(sent) == {"model", "messages", "max_tokens", "temperature", "tools"}
    assert sent["tools"] == [{"name": "lookup", "description": "", "input_schema": {"type": "object"}}]


def test_bedrock_receives_converse_fields_only():
    # Stubber compares the call's parameters with these exactly: any extra field fails the call
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    expected = {
        "modelId": "up",
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"temperature": 0},
        "toolConfig": {
            "tools": [
                {"toolSpec": {"name": "lookup", "description": "lookup", "inputSchema": {"json": {"type": "object"}}}}
            ]
        },
    }
    response = {
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    }
    with Stubber(client) as stubber:
        stubber.add_response("converse", response, expected)
        BedrockProvider(timeout=5, client=client).complete(client_request())
        stubber.assert_no_pending_responses()
