"""In-function authentication (the streaming function's URL) in JWT mode gives what API Gateway's JWT authorizer
would: the verified claims in the event's authorizer block, from which ``caller_of`` reads the tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ctxgate.api.identity import caller_of
from ctxgate.api.request_auth import authenticate_request
from ctxgate.errors import Unauthorized
from ctxgate.settings import get_settings

from tests.unit.auth.test_jwt import AUDIENCE, ISSUER, OTHER_RSA_KEY, idp, token  # noqa: F401 (idp: a fixture)


@pytest.fixture
def jwt_mode(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CTXGATE_AUTH_MODE", "jwt")
    monkeypatch.setenv("CTXGATE_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("CTXGATE_JWT_AUDIENCE", AUDIENCE)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_a_verified_token_names_the_caller_by_its_tenant_claim(jwt_mode, idp):  # noqa: F811
    authorizer = authenticate_request({"authorization": f"Bearer {token({'tenant': 'team-9'})}"})

    assert caller_of({"requestContext": {"authorizer": authorizer}}).tenant == "team-9"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "ctg_not_a_jwt"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": f"Bearer {token(key=OTHER_RSA_KEY)}"},
        {"authorization": f"Bearer {token({'aud': 'someone-else'})}"},
    ],
    ids=["no-credentials", "api-key-in-jwt-mode", "not-bearer", "bad-signature", "wrong-audience"],
)
def test_anything_but_a_valid_bearer_token_is_refused(jwt_mode, idp, headers):  # noqa: F811
    with pytest.raises(Unauthorized):
        authenticate_request(headers)
