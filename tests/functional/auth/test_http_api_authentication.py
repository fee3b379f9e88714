"""Authentication through the emulated HTTP API on moto: template.yaml's routes, its Lambda authorizer
(functions/authorize) invoked before each route's function, and the keys table. Every bad key, in either header
form, gets the OpenAI-style 401 and never reaches the api function."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ctxgate_local.runtime import free_port

UNAUTHORIZED = {"type": "authentication_error", "code": "invalid_api_key"}


@pytest.fixture
def gateway(aws, monkeypatch) -> Iterator[Any]:
    from ctxgate_local.authorizers import route_authorizers
    from ctxgate_local.http_api import make_server

    for name, value in aws.stack.functions["AuthorizeFunction"].environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CTXGATE_AUTH_CACHE_TTL_SECONDS", "0")  # revocations show at once in these tests
    from tests.conftest import _reset_caches

    _reset_caches()
    server = make_server("127.0.0.1", free_port(), aws.stack.functions, route_authorizers(aws.stack))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
        yield client
    server.shutdown()
    server.server_close()


@pytest.fixture
def keys(aws):
    from ctxgate.bootstrap import key_service

    return key_service()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_key(key: str) -> dict[str, str]:
    return {"x-api-key": key}


def chat_body(content: str = "hello") -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("form", [bearer, api_key])
def test_a_valid_key_in_either_header_reaches_the_route_as_its_tenant(gateway, keys, form):
    # GIVEN a key of tenant acme
    issued = keys.create("acme")
    # WHEN it calls a stateful chat in either header form
    reply = gateway.post(
        "/v1/chat/completions", json=chat_body(), headers={**form(issued.secret), "X-Session-Id": "s1"}
    )
    # THEN the request is served, and the session is acme's
    assert reply.status_code == 200, reply.text
    from ctxgate.bootstrap import session_service

    assert session_service().page("acme", "s1", after=0, limit=10) is not None
    assert session_service().page("default", "s1", after=0, limit=10) is None


@pytest.mark.parametrize("form", [bearer, api_key])
@pytest.mark.parametrize("case", ["missing", "malformed", "unknown", "revoked", "expired"])
def test_every_bad_key_gets_the_openai_style_401(gateway, keys, aws, form, case):
    # GIVEN a bad key of the given kind
    headers: dict[str, str] = {}
    if case == "malformed":
        headers = {"Authorization": "Basic dXNlcjpwYXNz"} if form is bearer else {"x-api-key": "ctg_" + "x" * 300}
    elif case == "unknown":
        headers = form("ctg_" + "A" * 43)
    elif case == "revoked":
        issued = keys.create("acme")
        assert gateway.get("/v1/models", headers=form(issued.secret)).status_code == 200
        keys.revoke(issued.record.id)
        headers = form(issued.secret)
    elif case == "expired":
        from ctxgate.auth.keys import KeyService

        past = KeyService(keys.store, clock=lambda: 1_000_000_000.0)  # created in 2001, for one day
        headers = form(past.create("acme", expires_days=1).secret)
    before = aws.item_count()
    # WHEN it calls a route that changes state
    reply = gateway.post("/v1/chat/completions", json=chat_body(), headers={**headers, "X-Session-Id": "s1"})
    # THEN it gets 401 with the OpenAI-style body, and nothing was stored
    assert reply.status_code == 401
    error = reply.json()["error"]
    assert {k: error[k] for k in UNAUTHORIZED} == UNAUTHORIZED and error["message"]
    assert aws.item_count() == before


def test_health_is_public_and_everything_else_needs_a_key(gateway):
    # GIVEN no key at all WHEN the public and the private routes are called
    # THEN /healthz answers, the others refuse
    assert gateway.get("/healthz").status_code == 200
    for method, path in [("GET", "/v1/models"), ("GET", "/v1/sessions/s1"), ("POST", "/v1/runs")]:
        assert gateway.request(method, path).status_code == 401, path


def test_the_authorizer_context_reaches_the_route_as_the_keys_identity(gateway, keys, aws):
    # GIVEN two tenants' keys
    a, b = keys.create("tenant-a"), keys.create("tenant-b")
    # WHEN A creates a session and B asks for it by id
    created = gateway.post("/v1/chat/completions", json=chat_body(), headers={**bearer(a.secret), "X-Session-Id": "t"})
    assert created.status_code == 200
    # THEN A reads it and B gets a 404
    assert gateway.get("/v1/sessions/t", headers=bearer(a.secret)).status_code == 200
    assert gateway.get("/v1/sessions/t", headers=api_key(b.secret)).status_code == 404
