"""Authentication end to end: the real ``ctxgate local`` enforcing keys exactly as deployed (its emulated HTTP API
calls functions/authorize), the official ``openai`` SDK as the client, and the real ``ctxgate keys`` command
against the printed local AWS endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from ctxgate_local.runtime import free_port

from tests.e2e.conftest import ROOT, LocalGateway, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e
TENANT_B_KEY = "sk-e2e-tenant-b-0000"


@pytest.fixture(scope="module")
def secured() -> Iterator[tuple[LocalGateway, int]]:
    aws_port = free_port()
    running = start_gateway(
        "--aws-port", str(aws_port), "--api-key", f"{TENANT_B_KEY}:tenant-b", "--parameter", "AuthCacheTtlSeconds=0"
    )
    yield running, aws_port
    stop_gateway(running)


def ctxgate_keys(gateway: LocalGateway, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("ctxgate")), "keys", *args, "--endpoint-url", gateway.aws_endpoint]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_start_prints_the_aws_endpoint_on_the_chosen_port_and_a_development_key(secured):
    gateway, aws_port = secured
    output = "".join(gateway.output)
    assert f"aws endpoint: http://127.0.0.1:{aws_port}\n" in output
    assert gateway.api_key.startswith("ctg_") and f"api key (tenant local): {gateway.api_key}\n" in output
    assert TENANT_B_KEY not in output  # a registered key is named by its id only


def test_the_development_key_works_with_the_sdk_and_no_key_is_a_401(secured):
    gateway, _ = secured
    good = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    assert [m.id for m in good.models.list()] == ["echo"]
    bad = openai.OpenAI(base_url=gateway.base_url, api_key="ctg_not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        bad.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "invalid_api_key"
    bare = httpx.post(f"{gateway.base_url}/chat/completions", json={"model": "echo", "messages": []}, timeout=30)
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "authentication_error"
    assert httpx.get(f"{gateway.base_url.removesuffix('/v1')}/healthz", timeout=30).status_code == 200


def test_keys_cli_against_the_local_endpoint_creates_lists_and_revokes(secured):
    gateway, _ = secured
    # GIVEN a key created with the CLI against the local AWS endpoint
    created = ctxgate_keys(gateway, "create", "--tenant", "acme", "--name", "e2e", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key=key["key"], max_retries=0)
    # WHEN it is used, listed and revoked
    assert sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}]).choices
    listed = ctxgate_keys(gateway, "list", "--tenant", "acme", "--json")
    assert [k["id"] for k in json.loads(listed.stdout)["data"]] == [key["id"]] and key["key"] not in listed.stdout
    assert ctxgate_keys(gateway, "revoke", key["id"]).returncode == 0
    # THEN the revoked key is refused (this gateway caches answers for 0 s)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])


def test_a_registered_key_is_another_tenant_that_sees_nothing_of_local(secured):
    gateway, _ = secured
    mine = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
    mine.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "secret plans"}], extra_headers={"X-Session-Id": "plans"}
    )
    url = f"{gateway.base_url}/sessions/plans"
    assert httpx.get(url, headers=gateway.auth, timeout=30).status_code == 200
    theirs = httpx.get(url, headers={"x-api-key": TENANT_B_KEY}, timeout=30)  # the Anthropic SDK's header
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "session_not_found"
