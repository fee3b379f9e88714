"""The one retry helper: exponential backoff with full jitter, bounded by attempts and by a deadline.

A retryable failure may carry a server-requested delay (``Retry-After``); it is honoured as a floor on the
jittered delay. If waiting would cross the deadline, the helper gives up at once rather than sleep uselessly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class RetryableError(Exception):
    """Raise (or subclass) this from an operation to ask for another attempt."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay: float = 0.25
    max_delay: float = 8.0
    deadline: float = 25.0
    """Seconds from the first attempt after which no new attempt starts."""

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**attempt)], attempt counted from 0."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        return (rng or random).uniform(0.0, ceiling)


def call_with_retry(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[int, RetryableError, float], None] | None = None,
) -> T:
    """Run ``operation`` until it returns, raises a non-retryable error, or the policy is exhausted.

    Raises the last :class:`RetryableError` when attempts or the deadline run out; any other exception
    propagates at once.
    """
    started = clock()
    attempt = 0
    while True:
        try:
            return operation()
        except RetryableError as error:
            attempt += 1
            if attempt >= policy.max_attempts:
                raise
            delay = policy.backoff(attempt - 1)
            if error.retry_after is not None:
                delay = max(delay, error.retry_after)
            if clock() - started + delay > policy.deadline:
                raise
            if on_retry is not None:
                on_retry(attempt, error, delay)
            sleep(delay)
