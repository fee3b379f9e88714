"""Single-flight turns: the lease a turn holds on its session, on the in-memory store with a fake clock."""

from __future__ import annotations

import pytest
from ctxgate.chat.lease import FIRST_POLL_SECONDS, MAX_PACED_POLL_SECONDS, SessionBusy, single_flight, typical_hold

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
    store.leases[("t", "s")] = ("holder", clock.now + 60, clock.now)
    # WHEN a request waits for it for five seconds
    with pytest.raises(SessionBusy), hold(store, clock, wait=5.0, rng=LongestJitter()):
        pass
    # THEN its polls come more often as it waits (the oldest waiter is the likeliest to take a freed lease)
    early, late = clock.slept[:3], clock.slept[-6:-1]
    assert max(late) < min(early)


def test_an_expired_lease_of_a_holder_that_died_is_taken_over():
    store, clock = MemoryStore(), Clock()
    store.leases[("t", "s")] = ("dead-lambda", clock.now + 1.0, clock.now - 20)
    with hold(store, clock, wait=5.0):
        assert store.leases[("t", "s")][0] != "dead-lambda"
    assert clock.now > 1001.0


def polls_within(clock: Clock, seconds: float) -> int:
    """How many times the waiter looked again in its first ``seconds``."""
    elapsed, polls = 0.0, 0
    for slept in clock.slept:
        elapsed += slept
        if elapsed > seconds:
            break
        polls += 1
    return polls


def test_a_waiter_barely_polls_before_the_holder_is_typically_done():
    # GIVEN a session whose turns typically hold the lease 4 s, held since just now
    store, clock = MemoryStore(), Clock()
    store.typical_holds[("t", "s")] = 4.0
    store.leases[("t", "s")] = ("holder", clock.now + 60, clock.now)
    # WHEN a request waits for it for ten seconds
    with pytest.raises(SessionBusy), hold(store, clock, wait=10.0, rng=LongestJitter()):
        pass
    # THEN it looks again at most twice in those 4 s (paced by the session, at most 2 s apart), then polls by age
    assert polls_within(clock, 4.0) <= 2 and max(clock.slept) <= MAX_PACED_POLL_SECONDS
    assert len(clock.slept) > 12


def test_without_a_typical_hold_a_waiter_polls_by_age_from_the_start():
    # GIVEN a busy session that never recorded how long its turns take
    store, clock = MemoryStore(), Clock()
    store.leases[("t", "s")] = ("holder", clock.now + 60, clock.now)
    # WHEN a request waits for it
    with pytest.raises(SessionBusy), hold(store, clock, wait=10.0, rng=LongestJitter()):
        pass
    # THEN its first interval is the newcomer's
    assert clock.slept[0] == pytest.approx(FIRST_POLL_SECONDS)


def test_a_turn_records_the_sessions_typical_hold_when_it_releases_the_lease():
    # GIVEN a session with no recorded hold time
    store, clock = MemoryStore(), Clock()
    # WHEN one turn holds the lease 3 s, then another 1 s
    with hold(store, clock):
        clock.now += 3.0
    assert store.typical_holds[("t", "s")] == pytest.approx(3.0)
    with hold(store, clock):
        clock.now += 1.0
    # THEN the typical hold is a moving average that leans on the history
    assert store.typical_holds[("t", "s")] == pytest.approx(typical_hold(3.0, 1.0))
    assert 1.0 < store.typical_holds[("t", "s")] < 3.0


def test_a_failed_turn_leaves_the_typical_hold_as_it_found_it():
    # GIVEN a session whose turns typically hold the lease 2 s
    store, clock = MemoryStore(), Clock()
    store.typical_holds[("t", "s")] = 2.0
    # WHEN a turn fails after 20 s
    with pytest.raises(RuntimeError), hold(store, clock):
        clock.now += 20.0
        raise RuntimeError("the model call failed")
    # THEN the lease is free and the typical hold is unchanged
    assert store.leases == {} and store.typical_holds[("t", "s")] == 2.0
