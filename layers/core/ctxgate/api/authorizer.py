"""The HTTP API's Lambda authorizer (payload format 2.0, simple responses): an authorizer event in, the simple
response out, with the caller's identity in the context that :func:`ctxgate.api.identity.caller_of` reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxgate.api.identity import limits_to_context
from ctxgate.auth.authenticator import CachedAuthenticator
from ctxgate.auth.keys import presented_key
from ctxgate.errors import Unauthorized


def authorize(event: Mapping[str, Any], authenticator: CachedAuthenticator) -> dict[str, Any]:
    """The simple response for one authorizer event: allowed with the caller's tenant, key id and limits as the
    context (what :func:`ctxgate.api.identity.caller_of` reads), or refused with no context."""
    try:
        caller = authenticator.caller(presented_key(dict(event.get("headers") or {})))
    except Unauthorized:
        return {"isAuthorized": False}
    context: dict[str, Any] = {"tenant": caller.tenant, "key_id": caller.key_id or ""}
    context.update(limits_to_context(caller.limits))
    return {"isAuthorized": True, "context": context}
