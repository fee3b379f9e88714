"""In-function authentication, for a front with no API Gateway authorizer before it (the streaming function's URL).

:func:`authenticate_request` is the one hook: request headers in, the ``requestContext.authorizer`` block the HTTP
API would have put in the event out, so that :func:`ctxgate.api.identity.caller_of` reads the caller exactly as it
does behind the HTTP API (the tenant never comes from anything else).

- ``CTXGATE_AUTH_MODE=key`` (default): the same key check as the HTTP API's Lambda authorizer
  (:func:`ctxgate.api.authorizer.authorize` over the cached key service), giving the same context
  (``{"lambda": {"tenant", "key_id", ...limits}}``).
- ``CTXGATE_AUTH_MODE=jwt``: the bearer token verified in-function by ``ctxgate.auth.jwt.verify_bearer(token) ->
  claims`` (the JWT-mode module), giving what the HTTP API's JWT authorizer passes (``{"jwt": {"claims": ...}}``).
  A build without that module refuses every request (it cannot verify a token, so it lets nothing through).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ctxgate.errors import Unauthorized
from ctxgate.settings import get_settings

logger = logging.getLogger(__name__)

PUBLIC_ROUTES = frozenset({("GET", "/healthz"), ("GET", "/openapi.json")})
"""What the HTTP API serves without an authorizer (``Auth: Authorizer: NONE`` in template.yaml)."""
REFUSAL = "Missing or invalid API key. Send it as 'Authorization: Bearer <key>' or 'x-api-key'."


def authenticate_request(headers: Mapping[str, str]) -> dict[str, Any]:
    """The authorizer block for a request with these (lower-cased) headers; raises :class:`Unauthorized`."""
    if get_settings().auth_mode == "jwt":
        return {"jwt": {"claims": _verified_claims(headers), "scopes": None}}
    from ctxgate.api.authorizer import authorize
    from ctxgate.bootstrap import key_authenticator

    answer = authorize({"headers": dict(headers)}, key_authenticator())
    if answer.get("isAuthorized") is not True:
        raise Unauthorized(REFUSAL)
    return {"lambda": dict(answer["context"])}


def _verified_claims(headers: Mapping[str, str]) -> dict[str, Any]:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Missing or invalid bearer token.")
    try:
        from ctxgate.auth.jwt import verify_bearer  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        logger.error("CTXGATE_AUTH_MODE is jwt but this build has no JWT verifier (ctxgate.auth.jwt)")
        raise Unauthorized("Missing or invalid bearer token.") from None
    try:
        claims = verify_bearer(token.strip())
    except Unauthorized:
        raise
    except Exception:  # a verifier failure must refuse, never let the request through or leak its reason
        logger.exception("bearer token verification failed")
        raise Unauthorized("Missing or invalid bearer token.") from None
    return dict(claims)
