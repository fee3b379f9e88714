"""Provider failures reach clients as generic messages with safe codes: no upstream body, host or key (respx and
Stubber on the real wire formats). The detail stays in the logs."""

from __future__ import annotations

import json
import logging

import boto3
import httpx
import pytest
import respx
from botocore.stub import Stubber
from ctxgate.errors import ProviderFailure, UpstreamRejected
from ctxgate.messages import GenerationParams, Message
from ctxgate.providers.bedrock import BedrockProvider
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

INTERNAL = "https://llm-gw.corp.internal:8443/v1"
LEAK = "Invalid prompt: <secret customer text> sent by org-42 via llm-gw.corp.internal"


def router(provider: str = "openai") -> ModelRouter:
    models = ModelsFile(
        models=[
            ModelConfig(
                name="main", provider=provider, upstream_model="gpt-x", base_url=INTERNAL, fallbacks=["backup"]
            ),
            ModelConfig(name="backup", provider=provider, upstream_model="gpt-y", base_url=INTERNAL + "/backup"),
        ]
    )
    return ModelRouter(models, RetryPolicy(max_attempts=2, base_delay=0), sleep=lambda s: None)


def ask(r: ModelRouter) -> None:
    r.complete("main", [Message(role="user", content="hi")], GenerationParams())


def leaks(body: dict) -> list[str]:
    text = json.dumps(body)
    return [word for word in ("corp.internal", "8443", "secret customer", "org-42", "Invalid prompt") if word in text]


@respx.mock
def test_a_provider_400_is_not_echoed_to_the_client(caplog):
    # GIVEN an upstream that refuses the request with a body naming internals
    respx.post(f"{INTERNAL}/chat/completions").mock(
        return_value=httpx.Response(400, json={"error": {"message": LEAK, "type": "invalid_request_error"}})
    )
    # WHEN the router serves it
    with caplog.at_level(logging.WARNING), pytest.raises(UpstreamRejected) as caught:
        ask(router())
    # THEN the client's body is generic, with a safe code, and the logs keep the upstream text
    body = caught.value.to_body("req-1")["error"]
    assert leaks(body) == [] and body["code"] == "upstream_rejected" and body["request_id"] == "req-1"
    assert "`main`" in body["message"] and any("secret customer" in str(r.__dict__) for r in caplog.records)


@respx.mock
def test_a_context_length_refusal_keeps_a_safe_code():
    error = {"error": {"message": LEAK + " maximum context length is 8192", "code": "context_length_exceeded"}}
    respx.post(f"{INTERNAL}/chat/completions").mock(return_value=httpx.Response(400, json=error))
    with pytest.raises(UpstreamRejected) as caught:
        ask(router())
    assert caught.value.code == "context_length_exceeded" and leaks(caught.value.to_body()) == []


@respx.mock
def test_failed_candidates_do_not_reveal_hosts_or_bodies():
    respx.post(f"{INTERNAL}/chat/completions").mock(return_value=httpx.Response(503, text=LEAK))
    respx.post(f"{INTERNAL}/backup/chat/completions").mock(side_effect=httpx.ConnectError("llm-gw.corp.internal:8443"))
    with pytest.raises(ProviderFailure) as caught:
        ask(router())
    body = caught.value.to_body()
    assert caught.value.status == 503 and leaks(body) == [] and body["error"]["code"] == "provider_unavailable"


@respx.mock
def test_an_upstream_auth_failure_does_not_reveal_the_key():
    respx.post(f"{INTERNAL}/chat/completions").mock(
        return_value=httpx.Response(401, json={"error": {"message": "Incorrect API key provided: sk-live-123"}})
    )
    respx.post(f"{INTERNAL}/backup/chat/completions").mock(return_value=httpx.Response(403, text=LEAK))
    with pytest.raises(ProviderFailure) as caught:
        ask(router())
    body = caught.value.to_body()
    assert caught.value.status == 502 and leaks(body) == [] and "sk-live" not in json.dumps(body)


def test_a_bedrock_validation_error_is_not_echoed():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    models = ModelsFile(models=[ModelConfig(name="claude", provider="bedrock", upstream_model="anthropic.claude")])
    bedrock = ModelRouter(
        models,
        RetryPolicy(max_attempts=1),
        provider_factory=lambda config, timeout: BedrockProvider(timeout=5, client=client),
    )
    with Stubber(client) as stubber:
        stubber.add_client_error("converse", "ValidationException", LEAK, 400)
        with pytest.raises(UpstreamRejected) as caught:
            bedrock.complete("claude", [Message(role="user", content="hi")], GenerationParams())
    assert leaks(caught.value.to_body()) == [] and caught.value.code == "upstream_rejected"
