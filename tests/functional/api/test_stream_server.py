"""The streaming function's server (``ctxgate.api.stream_server``) on moto: the api function's real handler
behind it, authenticated in-function with the key check of the HTTP API's authorizer (function URLs run none)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from ctxgate_local.runtime import free_port

from tests.conftest import load_function


@pytest.fixture
def server(aws, monkeypatch) -> Iterator[httpx.Client]:
    from ctxgate.api.stream_server import make_server

    for name, value in aws.stack.functions["StreamingFunction"].environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CTXGATE_ECHO_CHUNK_DELAY_MS", "1")
    from tests.conftest import _reset_caches

    _reset_caches()
    running = make_server("127.0.0.1", free_port(), load_function("api").lambda_handler)
    threading.Thread(target=running.serve_forever, daemon=True).start()
    host, port = running.server_address[:2]
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
        yield client
    running.shutdown()
    running.server_close()


@pytest.fixture
def key(aws) -> str:
    from ctxgate.bootstrap import key_service

    return key_service().create("acme").secret


def chat(stream: bool = True) -> dict[str, Any]:
    return {"model": "echo", "messages": [{"role": "user", "content": "stream me"}], "stream": stream}


def test_a_streamed_completion_arrives_as_separate_chunks_for_the_keys_tenant(server, key):
    # GIVEN a valid key WHEN a streamed chat completion and a session turn go through the streaming server
    session = {"X-Session-Id": "s1", "Authorization": f"Bearer {key}"}
    with server.stream("POST", "/v1/chat/completions", json=chat(), headers=session) as response:
        reads = [chunk for chunk in response.iter_raw() if chunk]
    # THEN the body came in several network reads, one SSE event each, ending in [DONE]
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert len(reads) > 5 and reads[-1].endswith(b"data: [DONE]\n\n")
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content", "")
        for line in b"".join(reads).decode().split("\n\n")
        if line.startswith("data: {")
    )
    assert text == "[echo] received 1 messages; last: stream me"
    # AND the turn belongs to the key's tenant (the authorizer context the server put in the event)
    stored = server.get("/v1/sessions/s1", headers={"Authorization": f"Bearer {key}"})
    assert [t["content"] for t in stored.json()["turns"]] == ["stream me", text]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer ctg_not-a-key"}, {"x-api-key": "nope"}])
def test_requests_without_a_valid_key_get_401_and_never_reach_the_handler(server, headers):
    response = server.post("/v1/chat/completions", json=chat(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_forged_authorizer_context_in_the_request_cannot_choose_the_tenant(server, key):
    # GIVEN a valid key of tenant acme, and a header claiming another tenant
    headers = {"Authorization": f"Bearer {key}", "X-Session-Id": "s2"}
    forged = {**headers, "requestContext": '{"authorizer": {"lambda": {"tenant": "other"}}}'}
    server.post("/v1/chat/completions", json=chat(stream=False), headers=forged)
    # THEN the session is acme's, not the claimed tenant's
    from ctxgate.bootstrap import session_service

    assert session_service().page("acme", "s2", after=0, limit=10) is not None
    assert session_service().page("other", "s2", after=0, limit=10) is None


def test_health_and_the_openapi_description_are_public(server):
    assert server.get("/healthz").status_code == 200
    assert server.get("/openapi.json").status_code == 200
