"""What clients see of failures, through functions/api/app.py on moto: an OpenAI-style body with message, type,
code and request id; ``x-request-id`` on every response; and nothing of the upstream (body, host, key)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.conftest import load_event, load_function

UPSTREAM = "http://llm-gw.corp.internal:8443/v1"
LEAK = "prompt rejected by llm-gw.corp.internal for org-42: <customer secret>"


@pytest.fixture
def api(aws, models_file, monkeypatch):
    monkeypatch.setenv("CTXGATE_RETRY_MAX_ATTEMPTS", "1")
    models_file(
        "models:\n"
        "  - {name: echo, provider: echo, upstream_model: echo}\n"
        f"  - {{name: remote, provider: openai, upstream_model: m, base_url: '{UPSTREAM}'}}\n"
    )
    return load_function("api")


def send(api, lambda_context, event) -> tuple[int, dict[str, str], str]:
    response = api.lambda_handler(event, lambda_context)
    return response["statusCode"], {k.lower(): v for k, v in response["headers"].items()}, response["body"]


def remote_chat() -> dict:
    body = {"model": "remote", "messages": [{"role": "user", "content": "hello"}]}
    return load_event("chat_completion_stateless.json", body=body)


@pytest.mark.parametrize(
    ("upstream", "status", "code"),
    [
        (
            httpx.Response(400, json={"error": {"message": LEAK, "type": "invalid_request_error"}}),
            400,
            "upstream_rejected",
        ),
        (
            httpx.Response(401, json={"error": {"message": "Incorrect API key provided: sk-live-9"}}),
            502,
            "provider_error",
        ),
        (httpx.Response(503, text=LEAK), 503, "provider_unavailable"),
    ],
)
def test_upstream_failures_reveal_nothing_of_the_upstream(api, lambda_context, upstream, status, code):
    # GIVEN an upstream that fails with a body naming internal hosts, customers and keys
    event = remote_chat()
    with respx.mock:
        respx.post(f"{UPSTREAM}/chat/completions").mock(return_value=upstream)
        # WHEN a client's request is served by it
        got_status, headers, text = send(api, lambda_context, event)
    # THEN the client gets a generic OpenAI-style error with a safe code and the request id, and nothing else
    error = json.loads(text)["error"]
    request_id = event["requestContext"]["requestId"]
    assert got_status == status and error["code"] == code and error["message"] and error["type"]
    assert error["request_id"] == request_id and headers["x-request-id"] == request_id
    everything = text + json.dumps(headers)
    assert not [w for w in ("corp.internal", "8443", "org-42", "customer secret", "sk-live") if w in everything]


def test_a_transport_error_does_not_name_the_host(api, lambda_context):
    with respx.mock:
        respx.post(f"{UPSTREAM}/chat/completions").mock(side_effect=httpx.ConnectError("llm-gw.corp.internal:8443"))
        status, headers, text = send(api, lambda_context, remote_chat())
    assert status == 503 and "corp.internal" not in text and headers["x-request-id"]


def test_success_carries_the_request_id(api, lambda_context):
    event = load_event("chat_completion_stateless.json")
    status, headers, _ = send(api, lambda_context, event)
    assert status == 200 and headers["x-request-id"] == event["requestContext"]["requestId"]


def test_an_unknown_route_and_a_bad_body_carry_the_request_id_too(api, lambda_context):
    unknown = load_event("get_session.json", rawPath="/v1/nowhere", routeKey="GET /v1/nowhere")
    unknown["requestContext"]["http"]["path"] = "/v1/nowhere"
    status, headers, text = send(api, lambda_context, unknown)
    assert status == 404 and json.loads(text)["error"]["request_id"] == headers["x-request-id"]
    status, headers, text = send(api, lambda_context, load_event("chat_completion_stateless.json", body="{not json"))
    assert status == 400 and json.loads(text)["error"]["request_id"] == headers["x-request-id"]


def test_without_an_api_gateway_request_id_the_lambda_request_id_is_used(api, lambda_context):
    event = load_event("chat_completion_stateless.json")
    del event["requestContext"]["requestId"]
    _, headers, _ = send(api, lambda_context, event)
    assert headers["x-request-id"] == lambda_context.aws_request_id


def test_an_unexpected_error_is_a_500_with_no_trace(api, lambda_context, monkeypatch):
    from ctxgate.chat.service import ChatService

    def explode(*args, **kwargs):
        raise RuntimeError("boom at /var/task/ctxgate/internal.py line 3, host db.corp.internal")

    monkeypatch.setattr(ChatService, "stateless", explode)
    status, headers, text = send(api, lambda_context, load_event("chat_completion_stateless.json"))
    error = json.loads(text)["error"]
    assert status == 500 and error["code"] == "internal_error" and error["request_id"] == headers["x-request-id"]
    assert "boom" not in text and "corp.internal" not in text and "Traceback" not in text
