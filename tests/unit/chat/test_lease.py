"""Single-flight turns: the lease a turn holds on its session, on the in-memory store with a fake clock."""

from __future__ import annotations

import pytest
from ctxgate.chat.lease import FIRST_POLL_SECONDS, SessionBusy, single_flight

from tests.fakes import MemoryStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class LongestJitter:
    """The jitter that always picks the longest interval allowed, so intervals can be compared exactly."""

    def uniform(self, low: float, high: float) -> float:
        return high


def hold(store: MemoryStore, clock: Clock, *, wait: float = 5.0, hold_for: float = 30.0, rng=None):
    return single_flight(
        store,
        "t",
        "s",
        wait_until=clock.now + wait,
        hold_until=clock.now + hold_for,
        clock=clock,
        sleep=clock.sleep,
        rng=rng,
    )


def test_the_lease_is_released_when_the_turn_ends():
    store, clock = MemoryStore(), Clock()
    with hold(store, clock):
        assert ("t", "s") in store.leases
    assert store.leases == {}


def test_the_lease_is_released_when_the_turn_fails():
    store, clock = MemoryStore(), Clock()
    with pytest.raises(RuntimeError), hold(store, clock):
        raise RuntimeError("the model call failed")
    assert store.leases == {}


def test_a_second_turn_waits_and_gets_409_session_busy_when_its_deadline_passes():
    store, clock = MemoryStore(), Clock()
    with hold(store, clock, hold_for=60), pytest.raises(SessionBusy) as busy, hold(store, clock, wait=2.0):
        pass
    assert busy.value.status == 409 and busy.value.code == "session_busy" and busy.value.retry_after >= 1
    assert clock.now - 1000.0 == pytest.approx(2.0, abs=0.01)  # it waited until its own deadline, no longer
    assert all(s <= FIRST_POLL_SECONDS for s in clock.slept)  # polling, with a bounded interval


def test_a_request_polls_sooner_the_longer_it_has_waited():
    # GIVEN a session held for a minute
    store, clock = MemoryStore(), Clock()
    store.leases[("t", "s")] = ("holder", clock.now + 60)
    # WHEN a request waits for it for five seconds
    with pytest.raises(SessionBusy), hold(store, clock, wait=5.0, rng=LongestJitter()):
        pass
    # THEN its polls come more often as it waits (the oldest waiter is the likeliest to take a freed lease)
    early, late = clock.slept[:3], clock.slept[-6:-1]
    assert max(late) < min(early)


def test_an_expired_lease_of_a_holder_that_died_is_taken_over():
    store, clock = MemoryStore(), Clock()
    store.leases[("t", "s")] = ("dead-lambda", clock.now + 1.0)
    with hold(store, clock, wait=5.0):
        assert store.leases[("t", "s")][0] != "dead-lambda"
    assert clock.now > 1001.0
