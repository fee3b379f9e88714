"""Verify a bearer JWT inside a function, as the HTTP API's built-in JWT authorizer does at the edge.

API Gateway routes never need this: with ``AuthMode=jwt`` their authorizer has already checked the token and the
function reads its claims from the event (``ctxgate.api.identity``). Paths that bypass API Gateway (a Lambda
function URL for streaming) run no authorizer, so they call :func:`verify_bearer` and then
:func:`caller_from_claims`, and accept exactly what API Gateway would:

- the signature, RS256 or ES256, by a key of the issuer's JWKS, found by the token's ``kid``. The JWKS comes from
  OIDC discovery (``{issuer}/.well-known/openid-configuration`` -> ``jwks_uri``) or, where the issuer publishes
  no discovery document, ``{issuer}/.well-known/jwks.json``. It is cached, and refetched once when a token names
  an unknown ``kid`` (a rotated key), at most once per cooldown so random ``kid``\\ s cannot hammer the issuer;
- ``iss`` equal to the configured issuer; ``aud``, or else ``client_id`` (Cognito access tokens carry no ``aud``),
  one of the configured audiences;
- ``exp`` required and in the future, ``nbf`` and ``iat`` not in the future, with a small leeway for clock skew.

Every refusal is :class:`~ctxgate.errors.Unauthorized` with one generic message; the reason is logged. PyJWT (and
``cryptography``) is imported on first use, so modules importing this one pay nothing at cold start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from ctxgate.auth.models import TENANT_PATTERN, Caller
from ctxgate.errors import Unauthorized

if TYPE_CHECKING:
    import httpx

    from ctxgate.settings import Settings

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 30
"""Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
MAX_TOKEN_CHARS = 16_384
"""Longer bearer values are refused before parsing (API Gateway caps a header far below any real token's need)."""
INVALID_TOKEN = "Missing, invalid or expired bearer token."


class JwtVerifier:
    """Checks tokens of one issuer for a set of audiences. Thread-safe; keep one per issuer (the JWKS cache)."""

    def __init__(
        self,
        issuer: str,
        audiences: Sequence[str],
        *,
        http: httpx.Client | None = None,
        jwks_lifespan_seconds: float = 300,
        refresh_cooldown_seconds: float = 30,
        timeout_seconds: float = 5,
        leeway_seconds: float = LEEWAY_SECONDS,
    ) -> None:
        if not issuer or not audiences:
            raise ValueError("a JWT verifier needs an issuer and at least one audience")
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._http = http
        self._jwks_lifespan = jwks_lifespan_seconds
        self._cooldown = refresh_cooldown_seconds
        self._timeout = timeout_seconds
        self._leeway = leeway_seconds
        self._keys: Any = None  # the PyJWKClient, built on first use (it needs the JWKS URL: a network call)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token`` (a bare JWT or ``Bearer <jwt>``); raises :class:`Unauthorized` otherwise."""
        import jwt

        token = _strip_bearer(token)
        try:
            signing_key = self._key_client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key=signing_key,
                algorithms=list(ALGORITHMS),
                issuer=self.issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except (jwt.PyJWTError, _FetchError) as error:
            logger.info("bearer token refused", extra={"reason": f"{type(error).__name__}: {error}"})
            raise Unauthorized(INVALID_TOKEN, code="invalid_token") from None
        if not self._audience_matches(claims):
            logger.info("bearer token refused", extra={"reason": "no accepted aud or client_id"})
            raise Unauthorized(INVALID_TOKEN, code="invalid_token")
        return claims

    def _audience_matches(self, claims: Mapping[str, Any]) -> bool:
        audience = claims.get("aud")
        if audience is not None:
            values = [audience] if isinstance(audience, str) else audience
            return isinstance(values, list) and any(isinstance(v, str) and v in self.audiences for v in values)
        client_id = claims.get("client_id")
        return isinstance(client_id, str) and client_id in self.audiences

    def _key_client(self) -> Any:
        if self._keys is None:  # a failed discovery leaves it unset: the next token tries again
            client_class = _jwks_client_class()
            self._keys = client_class(
                self._jwks_url(), self._get, lifespan=self._jwks_lifespan, cooldown=self._cooldown
            )
        return self._keys

    def _jwks_url(self) -> str:
        """``jwks_uri`` from the issuer's OIDC discovery document or, if the issuer has none (404),
        ``{issuer}/.well-known/jwks.json``. Any other failure raises, so a passing outage is not remembered."""
        base = self.issuer.rstrip("/")
        try:
            document = self._get(f"{base}/.well-known/openid-configuration")
        except _NotFound:
            return f"{base}/.well-known/jwks.json"
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith("https://"):
            raise _FetchError("the issuer's discovery document names no https jwks_uri")
        return jwks_uri

    def _get(self, url: str) -> dict[str, Any]:
        """GET a JSON object; any failure (network, status, body) is a :class:`_FetchError`."""
        import httpx

        try:
            if self._http is not None:
                response = self._http.get(url, timeout=self._timeout)
            else:
                response = httpx.get(url, timeout=self._timeout)  # no redirects: httpx does not follow by default
            if response.status_code in (404, 410):
                raise _NotFound(f"GET {url}: {response.status_code}")
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise _FetchError(f"GET {url} failed: {type(error).__name__}") from error
        if not isinstance(body, dict):
            raise _FetchError(f"GET {url} returned no JSON object")
        return body


def verify_bearer(token: str, settings: Settings) -> dict[str, Any]:
    """The verified claims of a bearer JWT under ``settings`` (``jwt_issuer``, ``jwt_audiences``).

    Raises :class:`Unauthorized` for any token API Gateway's JWT authorizer would refuse, and when no issuer or
    audience is configured (a misconfiguration must never accept a token).
    """
    if not settings.jwt_issuer or not settings.jwt_audiences:
        logger.error("a bearer JWT arrived but CTXGATE_JWT_ISSUER or CTXGATE_JWT_AUDIENCE is not set")
        raise Unauthorized(INVALID_TOKEN, code="invalid_token")
    return _verifier(settings.jwt_issuer, tuple(settings.jwt_audiences)).verify(token)


@cache
def _verifier(issuer: str, audiences: tuple[str, ...]) -> JwtVerifier:
    return JwtVerifier(issuer, audiences)


def caller_from_claims(claims: Mapping[str, Any], tenant_claim: str | None = None) -> Caller:
    """The :class:`Caller` a validated token names: its tenant is the ``tenant_claim`` claim (by default the
    settings' ``jwt_tenant_claim``), validated like every tenant. A JWT caller has no key, hence no key limits.
    Raises :class:`Unauthorized` when the claim is missing or not a valid tenant."""
    if tenant_claim is None:
        from ctxgate.settings import get_settings

        tenant_claim = get_settings().jwt_tenant_claim
    value = claims.get(tenant_claim)
    if not value:
        raise Unauthorized("The request carries no authenticated identity.")
    tenant = str(value)
    if not isinstance(value, str | int) or isinstance(value, bool) or not TENANT_PATTERN.fullmatch(tenant):
        raise Unauthorized("The authenticated identity names no valid tenant.")
    return Caller(tenant=tenant)


class _FetchError(Exception):
    """The issuer's discovery document or JWKS could not be fetched or read."""


class _NotFound(_FetchError):
    """The issuer does not publish that document."""


def _strip_bearer(value: str) -> str:
    token = value.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthorized(INVALID_TOKEN, code="invalid_token")
    return token


@cache
def _jwks_client_class() -> type:
    from jwt import PyJWKClient
    from jwt.exceptions import PyJWKClientConnectionError

    class JwksClient(PyJWKClient):
        """PyJWT's JWKS client (key cache, refresh on an unknown ``kid`` with a cooldown) fetching through httpx:
        the project's one HTTP client, with its timeouts, and what tests intercept with respx."""

        def __init__(self, uri: str, get: Any, *, lifespan: float, cooldown: float) -> None:
            super().__init__(uri, cache_jwk_set=True, lifespan=lifespan, cooldown_duration=cooldown)
            self._get_json = get

        def fetch_data(self) -> Any:
            try:
                return self._get_json(self.uri)
            except _FetchError as error:
                raise PyJWKClientConnectionError(str(error)) from None

    return JwksClient
