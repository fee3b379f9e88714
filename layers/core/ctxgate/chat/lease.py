"""Single-flight turns: one turn at a time per session, so the loser of a race never pays for a model call.

A turn takes its session's lease before it plans the context and calls the model, and gives it back when it has
committed or failed. The lease expires on its own no later than the function's deadline, so a holder that dies
frees it. Other requests on the session wait, polling with jitter and an interval that shrinks with how long they
have waited, until the lease is theirs or their own deadline is too close to serve a turn; then they get 409
``session_busy`` with ``Retry-After`` and no model call. The conditional append stays as the safety net under the lease.

DynamoDB has no queue to wait in, so arrival order is approximated: a newcomer polls slowly and a request polls
faster the longer it has waited, so the oldest waiter is the likeliest to find the lease free when it is released.
Polling is also paced by the session itself: each holder records how long the session's turns typically hold the
lease, a busy lease tells a waiter since when it is held, and a waiter does not look again (much) before the holder
is typically done. Every failed poll is a conditional write, so waiters that poll through a long turn cost
capacity on AWS and, locally, CPU the turns they wait for need.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ctxgate.errors import CtxgateError
from ctxgate.sessions.ports import SessionLeases

FIRST_POLL_SECONDS = 0.6
MIN_POLL_SECONDS = 0.1
POLL_SPEEDUP = 0.05
"""Seconds taken off the poll interval per second waited: a request polls every 0.6 s on arrival, every 0.35 s after
5 s, every 0.1 s after 10 s. Age sets the pace, so among many waiters the oldest polls fastest (a fair queue, as
far as polling can be one), while newcomers poll slowly: every failed poll is a conditional write (a DynamoDB
write unit on AWS, CPU on moto), and polling every 20 ms made 40 waiters cost more than the turns they waited for
(``ctxgate bench contention``: 0.87-0.945 success before, see the README)."""
HOLD_WEIGHT = 0.3
"""Weight of the latest turn in the session's typical hold time (an exponential moving average)."""
MAX_PACED_POLL_SECONDS = 2.0
"""A waiter looks at least this often, however long the session's turns typically take (one slow turn raises the
average for a while)."""


class SessionBusy(CtxgateError):
    """Another turn held the session for longer than this request could wait (409, with Retry-After)."""

    status = 409
    type = "conflict_error"
    code = "session_busy"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


@contextmanager
def single_flight(
    leases: SessionLeases,
    tenant: str,
    session_id: str,
    *,
    wait_until: float,
    hold_until: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rng: random.Random | None = None,
) -> Iterator[None]:
    """Hold the session's lease for the body of the ``with``; wait for it until ``wait_until`` (clock time).

    ``hold_until`` bounds the lease (the function's own deadline): past it the lease is free for others even if
    this holder never released it.
    """
    holder = uuid.uuid4().hex
    jitter = rng or random.Random()
    arrived = clock()
    attempt = leases.try_acquire(tenant, session_id, holder, now=arrived, until=hold_until)
    while not attempt.acquired:
        now = clock()
        remaining = wait_until - now
        if remaining <= 0:
            raise SessionBusy(f"Session {session_id} is serving another turn; retry shortly.", retry_after=1)
        # The longer it has waited, the sooner it looks again...
        delay = max(MIN_POLL_SECONDS, FIRST_POLL_SECONDS - POLL_SPEEDUP * (now - arrived))
        # ...but not while the holder is still well short of the session's typical turn.
        expected = attempt.expected_release()
        if expected is not None:
            delay = max(delay, min(MAX_PACED_POLL_SECONDS, expected - now))
        sleep(min(remaining, jitter.uniform(delay / 2, delay)))
        attempt = leases.try_acquire(tenant, session_id, holder, now=clock(), until=hold_until)
    acquired = clock()
    try:
        yield
    except BaseException:
        # A failed turn leaves the lease as it found it: the typical hold unchanged, and no item at all if there
        # was none (a first turn that failed must not leave an item for a session that does not exist).
        leases.release(tenant, session_id, holder, typical_hold=attempt.typical_hold)
        raise
    leases.release(tenant, session_id, holder, typical_hold=typical_hold(attempt.typical_hold, clock() - acquired))


def typical_hold(previous: float | None, held: float) -> float:
    """The session's typical hold time after a turn that held the lease ``held`` seconds."""
    return held if previous is None else (1 - HOLD_WEIGHT) * previous + HOLD_WEIGHT * held
