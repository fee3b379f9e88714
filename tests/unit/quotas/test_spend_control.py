"""Spend control over in-memory counters: admission, reservation, settlement and release."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from ctxgate.auth.models import Caller, KeyLimits
from ctxgate.errors import InvalidRequest, PermissionDenied
from ctxgate.messages import Usage
from ctxgate.quotas.models import Counters, QuotaExceeded, UsageDelta, Windows
from ctxgate.quotas.ports import LimitReached
from ctxgate.quotas.service import SpendControl

NOON = 1_795_300_000.0  # 2026-11-21 UTC, 40 s into its minute


class MemoryCounters:
    """QuotaCounters with the DynamoDB adapter's semantics (conditional reservation, unconditional adjust)."""

    def __init__(self) -> None:
        self.minute: dict[tuple[str, int], list[int]] = {}
        self.day: dict[tuple[str, str], int] = {}
        self.lock = threading.Lock()

    def reserve(self, key_id, windows, *, tokens, limits):
        with self.lock:
            requests, used = self.minute.get((key_id, windows.minute), [0, 0])
            day = self.day.get((key_id, windows.day), 0)
            now = Counters(requests, used, day)
            if limits.tokens_per_day is not None and day + tokens > limits.tokens_per_day:
                raise LimitReached("day", now)
            if limits.rpm is not None and requests + 1 > limits.rpm:
                raise LimitReached("requests", now)
            if limits.tpm is not None and used + tokens > limits.tpm:
                raise LimitReached("tokens", now)
        return self.adjust(key_id, windows, requests=1, tokens=tokens, limits=limits)

    def adjust(self, key_id, windows, *, requests, tokens, limits):
        with self.lock:
            minute = self.minute.setdefault((key_id, windows.minute), [0, 0])
            minute[0] += requests
            minute[1] += tokens
            self.day[(key_id, windows.day)] = self.day.get((key_id, windows.day), 0) + tokens
            return Counters(minute[0], minute[1], self.day[(key_id, windows.day)])

    def current(self, key_id, windows, *, limits):
        requests, used = self.minute.get((key_id, windows.minute), [0, 0])
        return Counters(requests, used, self.day.get((key_id, windows.day), 0))


class ListLedger:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None, str, str, UsageDelta]] = []

    def record(self, tenant, key_id, model, day, delta):
        self.rows.append((tenant, key_id, model, day, delta))

    def usage(self, tenant, start, end):
        raise NotImplementedError  # not used by spend control


@pytest.fixture
def counters() -> MemoryCounters:
    return MemoryCounters()


@pytest.fixture
def ledger() -> ListLedger:
    return ListLedger()


@pytest.fixture
def spend(counters, ledger) -> SpendControl:
    return SpendControl(counters, ledger, max_budget_tokens=100_000, clock=lambda: NOON)


def key(**limits) -> Caller:
    return Caller(tenant="acme", key_id="k1", limits=KeyLimits(**limits))


def test_served_settles_to_the_actual_tokens_and_ledgers_the_cost(spend, counters, ledger):
    with spend.hold(key(rpm=5, tpm=1000), 600) as hold:
        assert hold.state.remaining_tokens == 400  # the worst case is held while the call runs
        hold.served("m", Usage(prompt_tokens=50, completion_tokens=20, cached_tokens=10), Decimal("0.001"))
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(1, 70, 70)
    assert hold.state.remaining_tokens == 930 and hold.state.remaining_requests == 4
    assert hold.state.reset_requests == pytest.approx(20.0)
    [(tenant, key_id, model, day, delta)] = ledger.rows
    assert (tenant, key_id, model, day) == ("acme", "k1", "m", "2026-11-21")
    assert (delta.input_tokens, delta.cached_input_tokens, delta.output_tokens) == (50, 10, 20)
    assert delta.cost_usd == Decimal("0.001")


def test_leaving_the_block_with_an_error_releases_everything(spend, counters, ledger):
    with pytest.raises(RuntimeError), spend.hold(key(rpm=5, tpm=1000, tokens_per_day=5000), 600):
        raise RuntimeError("provider down")
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(0, 0, 0)
    assert ledger.rows == []


def test_a_cache_hit_keeps_the_request_but_not_the_tokens(spend, counters, ledger):
    with spend.hold(key(rpm=5, tpm=1000), 600) as hold:
        hold.cache_hit("m")
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(1, 0, 0)
    assert ledger.rows[0][4] == UsageDelta(cache_hits=1)


def test_a_full_minute_is_rate_limit_exceeded_and_a_full_day_insufficient_quota(spend):
    caller = key(rpm=1, tokens_per_day=1000)
    with spend.hold(caller, 100) as hold:
        hold.served("m", Usage(prompt_tokens=50, completion_tokens=50), Decimal(0))
    with pytest.raises(QuotaExceeded) as minute:
        spend.hold(caller, 100)
    assert minute.value.code == "rate_limit_exceeded" and minute.value.retry_after == 21
    with pytest.raises(QuotaExceeded) as day:
        spend.hold(key(tokens_per_day=1000), 901)
    assert day.value.code == "insufficient_quota" and day.value.state.remaining_tokens == 900


def test_a_caller_without_a_key_is_not_limited_but_is_ledgered(spend, counters, ledger):
    for _ in range(3):
        with spend.hold(Caller(tenant="acme"), 10**9) as hold:
            hold.served("m", Usage(prompt_tokens=1, completion_tokens=1), Decimal(0))
    assert counters.minute == {} and [row[1] for row in ledger.rows] == [None, None, None]
    assert hold.state is None


def test_check_room_refuses_a_key_whose_window_is_full(spend):
    caller = key(rpm=1)
    with spend.hold(caller, 10) as hold:
        hold.cache_hit("m")
    with pytest.raises(QuotaExceeded):
        spend.check_room(caller)


def test_hard_caps(spend):
    with pytest.raises(PermissionDenied):
        spend.admit(key(models=("a",)), "b", max_output_tokens=None, output_limit=None)
    with pytest.raises(InvalidRequest, match="at most 100"):
        spend.admit(key(), "a", max_output_tokens=100, output_limit=101)
    with pytest.raises(InvalidRequest, match="at most 2000"):
        spend.admit(key(max_budget_tokens=2000), "a", max_output_tokens=None, output_limit=None, budget_tokens=2001)
    with pytest.raises(InvalidRequest, match="at most 100000"):
        spend.admit(key(), "a", max_output_tokens=None, output_limit=None, budget_tokens=100_001)
    spend.admit(
        key(models=("a",), max_budget_tokens=2000), "a", max_output_tokens=100, output_limit=100, budget_tokens=2000
    )
    assert spend.output_cap(None, None) == 4096 and spend.output_cap(300, None) == 300 and spend.output_cap(300, 5) == 5
