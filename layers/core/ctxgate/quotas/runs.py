"""A tenant's cap on concurrent agent runs, over the atomic slots of :class:`~ctxgate.quotas.ports.RunSlots`."""

from __future__ import annotations

from ctxgate.errors import RateLimited
from ctxgate.quotas.ports import RunSlots

SLOT_GRACE_SECONDS = 300
"""How long past its deadline a run's slot is held if the run never reports its end (then it is reclaimed)."""
RETRY_AFTER_SECONDS = 10


class ConcurrentRuns:
    def __init__(self, slots: RunSlots, cap: int) -> None:
        self.slots = slots
        self.cap = cap

    def take(self, tenant: str, run_id: str, *, deadline_at: float, now: float) -> None:
        """Hold a slot for the run, atomically; :class:`RateLimited` (429) if the tenant has ``cap`` live runs."""
        expires_at = deadline_at + SLOT_GRACE_SECONDS
        if not self.slots.acquire(tenant, run_id, cap=self.cap, expires_at=expires_at, now=now):
            raise RateLimited(
                f"At most {self.cap} agent runs may be active at once; wait for one to end.",
                retry_after=RETRY_AFTER_SECONDS,
                code="concurrent_runs_exceeded",
            )

    def give_back(self, tenant: str, run_id: str) -> None:
        """Idempotent, so every path that ends a run may call it."""
        self.slots.release(tenant, run_id)
