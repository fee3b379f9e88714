"""The emulated HTTP API's Lambda authorizer follows API Gateway's rules: a missing identity source is refused
without invoking the function, and answers are cached by the identity sources' values for the TTL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ctxgate_local.authorizers import LambdaAuthorizer
from ctxgate_local.template import Function

AUTHORIZER = """
CALLS = []

def handler(event, context):
    CALLS.append(event)
    if event["identitySource"] != ["Bearer good"]:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"tenant": "acme", "key_id": "key_1"}}
"""


@pytest.fixture
def authorizer(tmp_path: Path) -> LambdaAuthorizer:
    (tmp_path / "app.py").write_text(AUTHORIZER)
    function = Function(
        logical_id=f"Auth{tmp_path.name}", code_uri=tmp_path, handler="app.handler", environment={}, timeout=5
    )
    return LambdaAuthorizer("Auth", function, ["$request.header.authorization"], ttl_seconds=60)


def request(authorization: str | None) -> dict:
    headers = {"host": "local"} | ({"authorization": authorization} if authorization else {})
    return {
        "rawPath": "/v1/models",
        "rawQueryString": "",
        "routeKey": "GET /v1/models",
        "headers": headers,
        "requestContext": {"http": {"method": "GET", "path": "/v1/models"}, "requestId": "r1"},
    }


def calls(authorizer: LambdaAuthorizer) -> list:
    from ctxgate_local.handlers import load_handler

    return load_handler(authorizer.function).__globals__["CALLS"]


def test_a_missing_identity_source_is_refused_without_invoking_the_authorizer(authorizer):
    status, _, body = authorizer.authorize(request(None))
    assert status == 401 and json.loads(body)["error"]["code"] == "invalid_api_key"
    assert calls(authorizer) == []


def test_an_allowed_request_carries_the_context_and_the_answer_is_cached_per_identity(authorizer):
    first, second = request("Bearer good"), request("Bearer good")
    assert authorizer.authorize(first) is None and authorizer.authorize(second) is None
    assert second["requestContext"]["authorizer"] == {"lambda": {"tenant": "acme", "key_id": "key_1"}}
    assert len(calls(authorizer)) == 1 and calls(authorizer)[0]["type"] == "REQUEST"
    assert authorizer.authorize(request("Bearer bad"))[0] == 401
    assert len(calls(authorizer)) == 2


def test_auth_mode_jwt_without_an_issuer_is_refused_locally():
    from ctxgate_local.authorizers import route_authorizers
    from ctxgate_local.template import read_stack

    stack = read_stack(Path(__file__).resolve().parents[3] / "template.yaml", {"AuthMode": "jwt"})
    stack.functions = {"ApiFunction": Function("ApiFunction", Path("."), "app.handler", {}, 29)}

    with pytest.raises(ValueError, match=r"AuthMode=jwt needs JwtIssuer and JwtAudience"):
        route_authorizers(stack)
