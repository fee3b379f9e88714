"""Who is calling, and what their key allows. Import-light (dataclasses only): every request builds a Caller."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TENANT_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""What a tenant may be called: it is part of every stored key, so it is as strict as a session id."""


@dataclass(frozen=True)
class KeyLimits:
    """The limits a key carries. ``None`` means no limit of that kind; an empty ``models`` allows every model."""

    rpm: int | None = None
    """Requests per minute."""
    tpm: int | None = None
    """Tokens (input plus output) per minute."""
    tokens_per_day: int | None = None
    models: tuple[str, ...] = ()
    max_budget_tokens: int | None = None
    """Ceiling on ``X-Ctxgate-Budget`` (a session's token budget)."""
    cache_opt_in: bool = False
    """Whether ``X-Ctxgate-Cache-Opt-In`` and a ``max-age`` above the default are honoured for this key."""

    def allows_model(self, model: str) -> bool:
        return not self.models or model in self.models


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request: its tenant (from the authorizer, never from the request) and, for
    API keys, the key's id and limits. With a JWT there is no key: ``key_id`` is None."""

    tenant: str
    key_id: str | None = None
    limits: KeyLimits = field(default_factory=KeyLimits)
