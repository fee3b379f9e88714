"""The api handler on moto, called as an API key of a tenant (the Lambda authorizer's context on the event)."""

from __future__ import annotations

import base64
import json
import time
import types
from typing import Any

import pytest
from ctxgate.adapters.dynamodb_quotas import DynamoQuotaStore
from ctxgate.api.identity import limits_to_context
from ctxgate.auth.models import KeyLimits
from ctxgate.quotas.models import Windows

from tests.conftest import load_event, load_function


@pytest.fixture
def api(aws):
    return load_function("api")


@pytest.fixture(autouse=True)
def now(monkeypatch: pytest.MonkeyPatch) -> float:
    """The instant every quota window is computed at: spend control's clock is stopped at the start of the current
    minute, so a test cannot straddle two minute windows (or two days)."""
    from ctxgate.quotas import service

    instant = float(int(time.time()) // 60 * 60)
    monkeypatch.setattr(service, "time", types.SimpleNamespace(time=lambda: instant))
    return instant


@pytest.fixture
def today(now: float) -> str:
    return Windows.at(now).day


@pytest.fixture
def quota_store(aws) -> DynamoQuotaStore:
    return DynamoQuotaStore(aws.physical["UsageTable"])


def as_key(event: dict[str, Any], *, tenant: str = "acme", key_id: str | None = "key_a", **limits: Any) -> dict:
    """``event`` as the authorizer passes it on for an API key (``key_id``) with ``limits``; ``key_id=None`` is a
    JWT caller of ``tenant``."""
    if key_id is None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": {"tenant": tenant}, "scopes": None}}
    else:
        context = {"tenant": tenant, "key_id": key_id, **limits_to_context(KeyLimits(**limits))}
        event["requestContext"]["authorizer"] = {"lambda": context}
    return event


def chat_event(content: str = "hello", *, headers: dict[str, str] | None = None, **body: Any) -> dict[str, Any]:
    payload = {"model": "echo", "messages": [{"role": "user", "content": content}], **body}
    return load_event("chat_completion_stateless.json", body=payload, headers=headers or {})


def get_event(path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = load_event("get_session.json", rawPath=path, routeKey=f"GET {path}", queryStringParameters=query)
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in (query or {}).items())
    event["requestContext"]["http"]["path"] = path
    return event


def call(api, context, event) -> tuple[int, dict[str, str], Any]:
    response = api.lambda_handler(event, context)
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    return response["statusCode"], headers, json.loads(body) if body.startswith("{") else body
