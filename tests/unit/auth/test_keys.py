"""API keys in the domain: issuing, the one refusal for every bad key, the header forms, and the authorizer's
per-key cache (a revoked key is refused once the TTL has passed)."""

from __future__ import annotations

import pytest
from ctxgate.api.authorizer import authorize
from ctxgate.auth.authenticator import CachedAuthenticator
from ctxgate.auth.keys import KEY_PREFIX, KeyService, key_hash, key_id_of, presented_key
from ctxgate.auth.models import KeyLimits
from ctxgate.errors import InvalidRequest, Unauthorized

from tests.fakes import MemoryKeyStore


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(clock: Clock) -> KeyService:
    return KeyService(MemoryKeyStore(), clock=clock)


def test_an_issued_key_is_high_entropy_prefixed_and_stored_only_as_its_hash(keys):
    issued = keys.create("acme", name="ci", limits=KeyLimits(rpm=10, models=("echo",)))
    assert issued.secret.startswith(KEY_PREFIX) and len(issued.secret) == len(KEY_PREFIX) + 43
    stored = keys.store.get(issued.record.id)
    assert stored.key_hash == key_hash(issued.secret) and issued.secret not in repr(stored)
    assert issued.record.id == key_id_of(issued.secret) and issued.record.id.startswith("key_")
    assert keys.create("acme").secret != issued.secret


def test_a_valid_key_authenticates_as_its_tenant_with_its_limits(keys):
    issued = keys.create("acme", limits=KeyLimits(rpm=10, tpm=1000, models=("echo",), cache_opt_in=True))
    caller = keys.authenticate(issued.secret)
    assert (caller.tenant, caller.key_id) == ("acme", issued.record.id)
    assert caller.limits == KeyLimits(rpm=10, tpm=1000, models=("echo",), cache_opt_in=True)


@pytest.mark.parametrize("presented", [None, "", "ctg_unknown-but-well-formed-0000000000000000000000000", "x" * 300])
def test_missing_unknown_and_oversized_keys_get_the_same_refusal(keys, presented):
    with pytest.raises(Unauthorized) as refused:
        keys.authenticate(presented)
    assert refused.value.to_body()["error"] == {
        "message": "Missing or invalid API key.",
        "type": "authentication_error",
        "code": "invalid_api_key",
    }


def test_revoked_and_expired_keys_are_refused(keys, clock):
    revoked = keys.create("acme")
    keys.revoke(revoked.record.id)
    expiring = keys.create("acme", expires_days=1)
    assert keys.authenticate(expiring.secret).tenant == "acme"
    clock.now += 86400
    for key in (revoked, expiring):
        with pytest.raises(Unauthorized):
            keys.authenticate(key.secret)


def test_a_registered_development_key_works_like_an_issued_one(keys):
    keys.create("local", secret="sk-local-fixed")
    assert keys.authenticate("sk-local-fixed").tenant == "local"
    with pytest.raises(InvalidRequest):
        keys.create("other", secret="sk-local-fixed")  # the same secret cannot name two tenants


@pytest.mark.parametrize("tenant", ["", "a/b", "x" * 129, "tenant with space"])
def test_a_key_needs_a_valid_tenant(keys, tenant):
    with pytest.raises(InvalidRequest):
        keys.create(tenant)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer ctg_abc"}, "ctg_abc"),
        ({"Authorization": "bearer   ctg_abc "}, "ctg_abc"),
        ({"x-api-key": "ctg_abc"}, "ctg_abc"),
        ({"X-Api-Key": "ctg_abc", "authorization": "Bearer ctg_abc"}, "ctg_abc"),
        ({"x-api-key": "ctg_abc", "authorization": "Bearer ctg_other"}, None),
        ({"authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"authorization": "Bearer"}, None),
        ({}, None),
    ],
)
def test_the_key_comes_from_a_bearer_token_or_x_api_key(headers, expected):
    assert presented_key(headers) == expected


def test_the_authorizer_caches_answers_per_key_for_its_ttl(keys):
    # GIVEN an authorizer caching for 60 s, and a key it has allowed
    monotonic = Clock(0.0)
    authenticator = CachedAuthenticator(keys, ttl=60, clock=monotonic)
    issued = keys.create("acme")
    event = {"headers": {"x-api-key": issued.secret}}
    assert authorize(event, authenticator)["isAuthorized"] is True
    # WHEN the key is revoked
    keys.revoke(issued.record.id)
    # THEN the cached answer stands until the TTL has passed, and then the key is refused
    monotonic.now = 59.0
    assert authorize(event, authenticator)["isAuthorized"] is True
    monotonic.now = 60.5
    assert authorize(event, authenticator) == {"isAuthorized": False}


def test_the_authorizer_context_carries_tenant_key_id_and_limits(keys):
    issued = keys.create("acme", limits=KeyLimits(rpm=5, models=("echo", "gpt")))
    answer = authorize({"headers": {"authorization": f"Bearer {issued.secret}"}}, CachedAuthenticator(keys, ttl=0))
    assert answer == {
        "isAuthorized": True,
        "context": {
            "tenant": "acme",
            "key_id": issued.record.id,
            "cache_opt_in": False,
            "rpm": 5,
            "models": "echo,gpt",
        },
    }


def test_the_authorizer_cache_is_bounded(keys):
    authenticator = CachedAuthenticator(keys, ttl=60, max_entries=3)
    for n in range(10):
        authorize({"headers": {"x-api-key": f"ctg_random_{n:04d}"}}, authenticator)
    assert len(authenticator._answers) == 3
