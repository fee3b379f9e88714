"""``ctxgate local`` with ``AuthMode=jwt``: the emulated HTTP API checks bearer JWTs as API Gateway's JWT
authorizer does, and the api function takes the caller's tenant from the validated token's claim. The identity
provider (discovery document and JWKS) is served by respx; tokens are signed with a key generated here."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import rsa
from ctxgate_local.runtime import free_port
from jwt.algorithms import RSAAlgorithm

ISSUER = "https://idp.example.com/pool-1"
AUDIENCE = "ctxgate-app"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "tenant": "acme", "iat": now, "exp": now + 300}
    return jwt.encode(payload | claims, SIGNING_KEY, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
def gateway(aws) -> Iterator[httpx.Client]:
    from ctxgate_local.authorizers import route_authorizers
    from ctxgate_local.http_api import make_server

    jwt_mode = {"AuthMode": "jwt", "JwtIssuer": ISSUER, "JwtAudience": AUDIENCE}
    stack = dataclasses.replace(aws.stack, parameters=aws.stack.parameters | jwt_mode)
    public_key = json.loads(RSAAlgorithm.to_jwk(SIGNING_KEY.public_key())) | {"kid": "k1", "use": "sig"}
    with respx.mock(assert_all_called=False) as idp:
        idp.route(host="127.0.0.1").pass_through()
        idp.get(f"{ISSUER}/.well-known/openid-configuration").respond(json={"jwks_uri": f"{ISSUER}/keys"})
        idp.get(f"{ISSUER}/keys").respond(json={"keys": [public_key]})
        server = make_server("127.0.0.1", free_port(), stack.functions, route_authorizers(stack))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        host, port = server.server_address[:2]
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as client:
            yield client
        server.shutdown()
        server.server_close()


def create_session(gateway: httpx.Client, bearer: str, session: str) -> httpx.Response:
    return gateway.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {bearer}", "X-Session-Id": session},
        json={"model": "echo", "messages": [{"role": "user", "content": "hello"}]},
    )


def test_a_valid_token_reaches_the_route_as_the_tenant_its_claim_names(gateway):
    # GIVEN a session created with a token of tenant acme
    assert create_session(gateway, token(), "trip-1").status_code == 200

    # WHEN the same tenant and another tenant read it
    own = gateway.get("/v1/sessions/trip-1", headers={"Authorization": f"Bearer {token()}"})
    other = gateway.get("/v1/sessions/trip-1", headers={"Authorization": f"Bearer {token(tenant='globex')}"})

    # THEN acme sees it and globex gets the 404 of a missing session
    assert own.status_code == 200
    assert other.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {token(aud='someone-else')}"},
        {"Authorization": f"Bearer {token(exp=int(time.time()) - 600, iat=int(time.time()) - 900)}"},
    ],
    ids=["missing", "malformed", "wrong-audience", "expired"],
)
def test_a_bad_or_missing_token_gets_401_before_any_route(gateway, headers):
    # GIVEN the gateway in JWT mode; WHEN a request carries no valid token
    response = gateway.get("/v1/models", headers=headers)

    # THEN it is refused with the OpenAI-style 401
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_valid_token_without_the_tenant_claim_is_refused_by_the_function(gateway):
    # GIVEN a token the authorizer accepts but that names no tenant
    bearer = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 300}, SIGNING_KEY, "RS256", headers={"kid": "k1"}
    )

    # WHEN it calls a route; THEN the api function refuses it
    assert gateway.get("/v1/models", headers={"Authorization": f"Bearer {bearer}"}).status_code == 401


def test_healthz_needs_no_token_in_jwt_mode(gateway):
    assert gateway.get("/healthz").status_code == 200
