"""Who a request is from: only the authorizer's context (API keys) or the validated JWT's claim (JWT mode)."""

from __future__ import annotations

import pytest
from ctxgate.api.identity import caller_of, limits_from_context, limits_to_context, tenant_of
from ctxgate.auth.models import KeyLimits
from ctxgate.errors import Unauthorized


def event(authorizer: dict | None, headers: dict | None = None) -> dict:
    context = {} if authorizer is None else {"authorizer": authorizer}
    return {"headers": headers or {}, "requestContext": context}


def test_the_lambda_authorizers_context_names_tenant_key_and_limits():
    limits = KeyLimits(rpm=60, tpm=1000, tokens_per_day=10_000, models=("echo",), max_budget_tokens=4096)
    caller = caller_of(event({"lambda": {"tenant": "acme", "key_id": "key_1", **limits_to_context(limits)}}))
    assert (caller.tenant, caller.key_id, caller.limits) == ("acme", "key_1", limits)


def test_in_jwt_mode_the_tenant_is_the_configured_claim(monkeypatch):
    monkeypatch.setenv("CTXGATE_JWT_TENANT_CLAIM", "custom:org")
    from ctxgate.settings import get_settings

    get_settings.cache_clear()
    jwt = {"jwt": {"claims": {"sub": "user-1", "custom:org": "globex"}, "scopes": None}}
    assert caller_of(event(jwt)).tenant == "globex" and caller_of(event(jwt)).key_id is None


@pytest.mark.parametrize(
    "authorizer",
    [
        None,
        {},
        {"lambda": {}},
        {"lambda": {"tenant": "a/b"}},
        {"jwt": {"claims": {"sub": "user-1"}}},
    ],
)
def test_no_authenticated_tenant_is_a_401_whatever_the_request_says(authorizer):
    with pytest.raises(Unauthorized):
        tenant_of(event(authorizer, headers={"x-tenant": "acme", "x-ctxgate-tenant": "acme"}))


def test_limits_survive_the_authorizer_context_whether_booleans_arrive_as_strings_or_not():
    limits = KeyLimits(rpm=1, models=("a", "b"), cache_opt_in=True)
    assert limits_from_context(limits_to_context(limits)) == limits
    assert limits_from_context({**limits_to_context(limits), "cache_opt_in": "true", "rpm": "1"}) == limits
