"""In-function JWT verification refuses what API Gateway's JWT authorizer refuses, and names the right caller.

Tokens are signed with keys generated here; the issuer's discovery document and JWKS are served by respx.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from ctxgate.auth.jwt import JwtVerifier, caller_from_claims, verify_bearer
from ctxgate.auth.models import Caller
from ctxgate.errors import Unauthorized
from ctxgate.settings import Settings
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.com/pool-1"
DISCOVERY = f"{ISSUER}/.well-known/openid-configuration"
JWKS_URI = "https://idp.example.com/pool-1/keys"
AUDIENCE = "ctxgate-api"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private_key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    key = json.loads(algorithm.to_jwk(private_key.public_key()))
    return key | {"kid": kid, "use": "sig", "alg": "RS256" if algorithm is RSAAlgorithm else "ES256"}


def token(
    claims: dict[str, Any] | None = None,
    *,
    key: Any = RSA_KEY,
    kid: str = "rsa-1",
    algorithm: str = "RS256",
    drop: tuple[str, ...] = (),
) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "tenant": "acme", "iat": now, "exp": now + 300}
    payload = {k: v for k, v in (payload | (claims or {})).items() if k not in drop}
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[respx.MockRouter]:
    """An identity provider with OIDC discovery and a JWKS holding the RSA key ``rsa-1`` and the EC key ``ec-1``."""
    with respx.mock(assert_all_called=False) as router:
        router.get(DISCOVERY).respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URI})
        router.get(JWKS_URI).respond(json={"keys": [jwk(RSA_KEY, "rsa-1"), jwk(EC_KEY, "ec-1")]})
        yield router


@pytest.fixture
def verifier() -> JwtVerifier:
    return JwtVerifier(ISSUER, [AUDIENCE], refresh_cooldown_seconds=0)


def refused(verifier: JwtVerifier, bearer: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as refusal:
        verifier.verify(bearer)
    return refusal.value


def test_a_good_rs256_token_yields_its_claims(idp, verifier):
    claims = verifier.verify(f"Bearer {token()}")

    assert (claims["sub"], claims["tenant"]) == ("user-1", "acme")


def test_a_good_es256_token_yields_its_claims(idp, verifier):
    claims = verifier.verify(token(key=EC_KEY, kid="ec-1", algorithm="ES256"))

    assert claims["sub"] == "user-1"


def test_an_expired_token_is_refused(idp, verifier):
    long_ago = int(time.time()) - 3600

    assert refused(verifier, token({"iat": long_ago - 60, "exp": long_ago})).code == "invalid_token"


def test_a_token_without_exp_is_refused(idp, verifier):
    assert refused(verifier, token(drop=("exp",))).status == 401


def test_a_token_not_yet_valid_is_refused(idp, verifier):
    refused(verifier, token({"nbf": int(time.time()) + 600}))


def test_a_token_issued_in_the_future_is_refused(idp, verifier):
    refused(verifier, token({"iat": int(time.time()) + 600}))


def test_clock_skew_within_the_leeway_is_tolerated(idp, verifier):
    claims = verifier.verify(token({"nbf": int(time.time()) + 5, "exp": int(time.time()) - 5}))

    assert claims["tenant"] == "acme"


def test_a_wrong_audience_is_refused(idp, verifier):
    refused(verifier, token({"aud": "someone-else"}))


def test_an_audience_list_needs_one_accepted_audience(idp, verifier):
    assert verifier.verify(token({"aud": ["other", AUDIENCE]}))["sub"] == "user-1"


def test_client_id_stands_for_a_missing_aud_as_in_cognito_access_tokens(idp, verifier):
    assert verifier.verify(token({"client_id": AUDIENCE}, drop=("aud",)))["sub"] == "user-1"


def test_a_token_with_neither_aud_nor_client_id_is_refused(idp, verifier):
    refused(verifier, token(drop=("aud",)))


def test_a_wrong_issuer_is_refused(idp, verifier):
    refused(verifier, token({"iss": "https://evil.example.com"}))


def test_a_bad_signature_is_refused(idp, verifier):
    refused(verifier, token(key=OTHER_RSA_KEY, kid="rsa-1"))


def test_a_tampered_payload_is_refused(idp, verifier):
    header, _payload, signature = token().split(".")
    claims = {"iss": ISSUER, "aud": AUDIENCE, "tenant": "other", "exp": int(time.time()) + 300}
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode())

    refused(verifier, f"{header}.{forged.decode()}.{signature}")


def test_an_unsigned_token_is_refused(idp, verifier):
    refused(verifier, jwt.encode({"iss": ISSUER, "aud": AUDIENCE}, None, algorithm="none", headers={"kid": "rsa-1"}))


def test_an_hs256_token_signed_with_the_public_key_is_refused(idp, verifier):
    public_pem = RSA_KEY.public_key().public_bytes(encoding=_pem(), format=_spki())
    forged = _hs256(public_pem)

    refused(verifier, forged)


def test_an_unknown_kid_is_refused_after_one_refetch(idp, verifier):
    verifier.verify(token())
    fetches = idp.routes[1].call_count

    refused(verifier, token(kid="nobody"))
    assert idp.routes[1].call_count == fetches + 1


def test_a_rotated_key_is_picked_up_by_refetching_the_jwks(idp, verifier):
    verifier.verify(token())
    idp.get(JWKS_URI).respond(json={"keys": [jwk(RSA_KEY, "rsa-1"), jwk(OTHER_RSA_KEY, "rsa-2")]})

    assert verifier.verify(token(key=OTHER_RSA_KEY, kid="rsa-2"))["sub"] == "user-1"


def test_the_jwks_is_cached_between_tokens(idp, verifier):
    for _ in range(3):
        verifier.verify(token())

    assert (idp.routes[0].call_count, idp.routes[1].call_count) == (1, 1)


def test_unknown_kids_within_the_cooldown_do_not_refetch_the_jwks(idp):
    verifier = JwtVerifier(ISSUER, [AUDIENCE], refresh_cooldown_seconds=60)
    verifier.verify(token())
    refused(verifier, token(kid="random-1"))  # the first unknown kid may refetch once
    fetches = idp.routes[1].call_count

    for n in range(5):
        refused(verifier, token(kid=f"random-{n + 2}"))

    assert idp.routes[1].call_count == fetches


def test_without_discovery_the_jwks_comes_from_the_well_known_path():
    with respx.mock() as router:
        router.get(DISCOVERY).respond(404)
        jwks = router.get(f"{ISSUER}/.well-known/jwks.json").respond(json={"keys": [jwk(RSA_KEY, "rsa-1")]})

        claims = JwtVerifier(ISSUER, [AUDIENCE]).verify(token())

    assert claims["sub"] == "user-1" and jwks.called


def test_an_unreachable_issuer_refuses_the_token_and_is_retried_on_the_next_one():
    verifier = JwtVerifier(ISSUER, [AUDIENCE])
    with respx.mock() as router:
        router.get(DISCOVERY).mock(side_effect=httpx.ConnectError("down"))
        assert refused(verifier, token()).message == "Missing, invalid or expired bearer token."
    with respx.mock(assert_all_called=False) as router:
        router.get(DISCOVERY).respond(json={"issuer": ISSUER, "jwks_uri": JWKS_URI})
        router.get(JWKS_URI).respond(json={"keys": [jwk(RSA_KEY, "rsa-1")]})

        assert verifier.verify(token())["sub"] == "user-1"


def test_a_discovery_document_pointing_at_a_plain_http_jwks_is_refused():
    with respx.mock() as router:
        router.get(DISCOVERY).respond(json={"issuer": ISSUER, "jwks_uri": "http://idp.example.com/keys"})

        refused(JwtVerifier(ISSUER, [AUDIENCE]), token())


@pytest.mark.parametrize("bearer", ["", "Bearer ", "not-a-jwt", "Bearer a.b.c", "x" * 20_000])
def test_malformed_bearer_values_are_refused(idp, verifier, bearer):
    refused(verifier, bearer)


def test_refusals_never_say_why(idp, verifier):
    messages = {
        refused(verifier, bad).message
        for bad in (token({"aud": "x"}), token({"iss": "https://x"}), token(kid="nobody"), "garbage")
    }

    assert messages == {"Missing, invalid or expired bearer token."}


def test_verify_bearer_uses_the_issuer_and_audiences_of_the_settings(idp):
    settings = replace(Settings.from_env(), auth_mode="jwt", jwt_issuer=ISSUER, jwt_audiences=(AUDIENCE,))

    assert verify_bearer(f"Bearer {token()}", settings)["tenant"] == "acme"


def test_verify_bearer_refuses_every_token_when_no_issuer_is_configured(idp):
    settings = replace(Settings.from_env(), jwt_issuer="", jwt_audiences=())

    with pytest.raises(Unauthorized):
        verify_bearer(token(), settings)


def test_settings_read_the_mode_issuer_and_audiences_from_the_environment(monkeypatch):
    monkeypatch.setenv("CTXGATE_AUTH_MODE", "jwt")
    monkeypatch.setenv("CTXGATE_JWT_ISSUER", ISSUER)
    monkeypatch.setenv("CTXGATE_JWT_AUDIENCE", f"{AUDIENCE}, mobile-app")

    settings = Settings.from_env()

    assert settings.auth_mode == "jwt"
    assert (settings.jwt_issuer, settings.jwt_audiences) == (ISSUER, (AUDIENCE, "mobile-app"))


def test_settings_default_to_api_keys(monkeypatch):
    for name in ("CTXGATE_AUTH_MODE", "CTXGATE_JWT_ISSUER", "CTXGATE_JWT_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)

    assert (Settings.from_env().auth_mode, Settings.from_env().jwt_audiences) == ("apikey", ())


def test_the_caller_is_the_tenant_claim_of_the_token(idp, verifier):
    claims = verifier.verify(token({"custom:tenant": "team-7"}))

    assert caller_from_claims(claims, "custom:tenant") == Caller(tenant="team-7")


def test_the_default_tenant_claim_comes_from_the_settings(monkeypatch):
    monkeypatch.setenv("CTXGATE_JWT_TENANT_CLAIM", "org")

    assert caller_from_claims({"org": "acme", "tenant": "other"}) == Caller(tenant="acme")


def test_a_token_without_the_tenant_claim_names_no_caller(idp, verifier):
    claims = verifier.verify(token(drop=("tenant",)))

    with pytest.raises(Unauthorized):
        caller_from_claims(claims, "tenant")


@pytest.mark.parametrize("tenant", ["a/b", "x" * 129, "", True, ["acme"], {"id": "acme"}])
def test_an_invalid_tenant_claim_names_no_caller(tenant):
    with pytest.raises(Unauthorized):
        caller_from_claims({"tenant": tenant}, "tenant")


def _pem() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def _spki() -> Any:
    from cryptography.hazmat.primitives.serialization import PublicFormat

    return PublicFormat.SubjectPublicKeyInfo


def _hs256(secret: bytes) -> str:
    """An HS256 token keyed with the public key's PEM (the algorithm-confusion attack), built by hand because
    PyJWT refuses to sign with a PEM as an HMAC secret."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "tenant": "acme", "exp": now + 300}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"
