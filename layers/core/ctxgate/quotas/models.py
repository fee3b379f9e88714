"""What spend control works with: fixed windows, a key's counters, the rate-limit state a client sees, and usage.

Import-light (dataclasses and ``decimal``): the chat path builds these on every request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from ctxgate.errors import RateLimited

SECONDS_PER_DAY = 86_400
Limit = Literal["requests", "tokens", "day"]
"""Which counter refused: requests per minute, tokens per minute, or tokens per day."""


@dataclass(frozen=True)
class Windows:
    """The fixed windows an instant falls in: the epoch minute and the UTC day."""

    minute: int
    """Minutes since the epoch."""
    day: str
    """``YYYY-MM-DD`` (UTC)."""
    now: float

    @classmethod
    def at(cls, now: float) -> Windows:
        return cls(minute=int(now // 60), day=time.strftime("%Y-%m-%d", time.gmtime(now)), now=now)

    @property
    def minute_reset(self) -> float:
        """Seconds until the minute window ends."""
        return (self.minute + 1) * 60 - self.now

    @property
    def day_reset(self) -> float:
        """Seconds until the UTC day ends."""
        return SECONDS_PER_DAY - self.now % SECONDS_PER_DAY


@dataclass(frozen=True)
class Counters:
    """A key's counters in its current windows (0 for a window that has no item yet)."""

    minute_requests: int = 0
    minute_tokens: int = 0
    day_tokens: int = 0


@dataclass(frozen=True)
class RateLimitState:
    """What the ``x-ratelimit-*`` headers report for a key: a limit, what remains of it, and when it resets.

    The token figures are the key's tokens per minute when it has that limit, else its daily allowance."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens: float | None = None


class QuotaExceeded(RateLimited):
    """A key's quota would be exceeded (429): ``rate_limit_exceeded`` for a per-minute limit, ``insufficient_quota``
    for the daily allowance. Carries the key's rate-limit state for the response headers."""

    def __init__(self, message: str, *, retry_after: float, code: str, state: RateLimitState) -> None:
        super().__init__(message, retry_after=int(retry_after) + 1, code=code)
        self.state = state


@dataclass(frozen=True)
class UsageDelta:
    """What one served request adds to the ledger."""

    requests: int = 1
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    cost_usd: Decimal = Decimal(0)


@dataclass(frozen=True)
class UsageRecord:
    """One ledger row: a tenant's usage of one model through one key (None: a JWT caller) on one UTC day."""

    tenant: str
    day: str
    key_id: str | None
    model: str
    requests: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cache_hits: int = 0
    cost_usd: Decimal = Decimal(0)
