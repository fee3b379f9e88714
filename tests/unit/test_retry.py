from __future__ import annotations

import random

import pytest
from ctxgate.retry import RetryableError, RetryPolicy, call_with_retry


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def failing(times: int, error: Exception, result: str = "ok"):
    calls = {"n": 0}

    def operation() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return result

    return operation, calls


def test_full_jitter_stays_within_the_exponential_ceiling():
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0)
    rng = random.Random(7)
    for attempt in range(8):
        ceiling = min(4.0, 0.5 * 2**attempt)
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter spreads over the whole range


def test_retries_until_success_then_returns():
    # GIVEN an operation that fails twice with a retryable error
    clock = Clock()
    operation, calls = failing(2, RetryableError("busy"))
    # WHEN it is called with three attempts allowed
    result = call_with_retry(operation, RetryPolicy(max_attempts=3), sleep=clock.sleep, clock=clock)
    # THEN it succeeds on the third attempt after two sleeps
    assert result == "ok" and calls["n"] == 3 and len(clock.sleeps) == 2


def test_attempts_are_bounded():
    clock = Clock()
    operation, calls = failing(10, RetryableError("busy"))
    with pytest.raises(RetryableError):
        call_with_retry(operation, RetryPolicy(max_attempts=4), sleep=clock.sleep, clock=clock)
    assert calls["n"] == 4


def test_retry_after_is_a_floor_on_the_delay():
    clock = Clock()
    operation, _ = failing(1, RetryableError("slow down", retry_after=3.0))
    call_with_retry(operation, RetryPolicy(max_attempts=2, base_delay=0.1, deadline=30), sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [3.0]


def test_gives_up_instead_of_sleeping_past_the_deadline():
    clock = Clock()
    operation, calls = failing(5, RetryableError("slow down", retry_after=20.0))
    with pytest.raises(RetryableError):
        call_with_retry(operation, RetryPolicy(max_attempts=5, deadline=10), sleep=clock.sleep, clock=clock)
    assert calls["n"] == 1 and clock.sleeps == []


def test_non_retryable_errors_propagate_at_once():
    clock = Clock()
    operation, calls = failing(1, ValueError("bad"))
    with pytest.raises(ValueError):
        call_with_retry(operation, RetryPolicy(max_attempts=5), sleep=clock.sleep, clock=clock)
    assert calls["n"] == 1
