"""Ports of spend control: a key's window counters, the usage ledger, and a tenant's slots for concurrent runs."""

from __future__ import annotations

from typing import Protocol

from ctxgate.auth.models import KeyLimits
from ctxgate.quotas.models import Counters, Limit, UsageDelta, UsageRecord, Windows


class LimitReached(Exception):
    """A conditional reservation failed: ``limit`` has no room for it. ``counters`` are the values that refused."""

    def __init__(self, limit: Limit, counters: Counters) -> None:
        super().__init__(f"{limit} limit reached")
        self.limit = limit
        self.counters = counters


class QuotaCounters(Protocol):
    """Per-key counters in fixed windows. Only the windows the key has a limit for are kept."""

    def reserve(self, key_id: str, windows: Windows, *, tokens: int, limits: KeyLimits) -> Counters:
        """Atomically add one request and ``tokens`` to the key's windows if every limit still has room; else
        change nothing and raise :class:`LimitReached`. Concurrent reservations never push a counter past its
        limit. Returns the counters after the reservation."""
        ...

    def adjust(self, key_id: str, windows: Windows, *, requests: int, tokens: int, limits: KeyLimits) -> Counters:
        """Unconditionally add ``requests`` and ``tokens`` (negative to give back) to the windows of an earlier
        reservation; returns the counters after it."""
        ...

    def current(self, key_id: str, windows: Windows, *, limits: KeyLimits) -> Counters:
        """The key's counters now (a consistent read)."""
        ...


class UsageLedger(Protocol):
    def record(self, tenant: str, key_id: str | None, model: str, day: str, delta: UsageDelta) -> None:
        """Add ``delta`` to the ledger row of (tenant, key, model, day)."""
        ...

    def usage(self, tenant: str, start: str, end: str) -> list[UsageRecord]:
        """The tenant's ledger rows from day ``start`` through day ``end`` (inclusive), by day."""
        ...


class RunSlots(Protocol):
    """A tenant's concurrent agent runs. Acquiring is atomic; releasing is idempotent."""

    def acquire(self, tenant: str, run_id: str, *, cap: int, expires_at: float, now: float) -> bool:
        """Hold a slot for ``run_id`` until it is released or ``expires_at`` passes (a run that never reported its
        end); False if the tenant already holds ``cap`` live slots."""
        ...

    def release(self, tenant: str, run_id: str) -> None: ...
