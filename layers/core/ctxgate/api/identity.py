"""Who is calling: the :class:`Caller` of an HTTP API event, from what the authorizer established.

The tenant comes only from the authorizer: the Lambda authorizer's context (``requestContext.authorizer.lambda``)
or, in JWT mode, the configured claim of the validated token (``requestContext.authorizer.jwt.claims``). Nothing
in the request's headers or body can choose it. An event without either is refused with 401: the HTTP API never
forwards one, so it can only be a misconfiguration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxgate.auth.jwt import caller_from_claims
from ctxgate.auth.models import TENANT_PATTERN, Caller, KeyLimits
from ctxgate.errors import Unauthorized
from ctxgate.settings import get_settings


def caller_of(event: Mapping[str, Any]) -> Caller:
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    context = authorizer.get("lambda")
    if isinstance(context, Mapping) and context.get("tenant"):
        return Caller(
            tenant=_tenant(context["tenant"]),
            key_id=str(context.get("key_id") or "") or None,
            limits=limits_from_context(context),
        )
    claims = (authorizer.get("jwt") or {}).get("claims")
    if isinstance(claims, Mapping):  # the HTTP API's JWT authorizer validated the token
        return caller_from_claims(claims, get_settings().jwt_tenant_claim)
    raise Unauthorized("The request carries no authenticated identity.")


def tenant_of(event: Mapping[str, Any]) -> str:
    """The caller's tenant, from the authorizer only; raises :class:`Unauthorized` when there is none."""
    return caller_of(event).tenant


def limits_to_context(limits: KeyLimits) -> dict[str, str | int | bool]:
    """A key's limits as the authorizer's context carries them (flat: strings, numbers and booleans)."""
    context: dict[str, str | int | bool] = {"cache_opt_in": limits.cache_opt_in}
    for name in ("rpm", "tpm", "tokens_per_day", "max_budget_tokens"):
        value = getattr(limits, name)
        if value is not None:
            context[name] = value
    if limits.models:
        context["models"] = ",".join(limits.models)
    return context


def limits_from_context(context: Mapping[str, Any]) -> KeyLimits:
    def number(name: str) -> int | None:
        value = context.get(name)
        return None if value in (None, "") else int(value)

    models = str(context.get("models") or "")
    return KeyLimits(
        rpm=number("rpm"),
        tpm=number("tpm"),
        tokens_per_day=number("tokens_per_day"),
        models=tuple(m for m in models.split(",") if m),
        max_budget_tokens=number("max_budget_tokens"),
        cache_opt_in=str(context.get("cache_opt_in")).lower() == "true",
    )


def _tenant(value: Any) -> str:
    tenant = str(value)
    if not TENANT_PATTERN.fullmatch(tenant):
        raise Unauthorized("The authenticated identity names no valid tenant.")
    return tenant
