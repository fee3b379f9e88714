"""Who is calling: the tenant of a request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ctxgate.settings import get_settings


def tenant_of(event: Mapping[str, Any]) -> str:
    """The tenant of an HTTP API event. Until authentication lands it is the configured default; it will come
    only from the authorizer's context (``requestContext.authorizer``), never from the request itself."""
    return get_settings().default_tenant
