"""The context engine's invariants over long sessions, on the in-memory store (no AWS)."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any

import pytest
from ctxgate.context.assemble import ContextBudgetExceeded
from ctxgate.context.models import ContextConfig
from ctxgate.messages import Message
from ctxgate.tokens import count_messages

from tests.unit.context.harness import Harness, chatter, user

SYSTEM = "You are a careful assistant. " * 20


@dataclass
class LongSession:
    harness: Harness
    outcomes: list[Any]
    """The outcomes of the 248 chatter turns that follow the pinned opening."""


@pytest.fixture(scope="module")
def pinned_long_session() -> LongSession:
    """500 turns with two pins (one added through the API, one as a pinned message); run once for the module."""
    rng = random.Random(1)
    harness = Harness(budget=1024)
    harness.send(Message(role="system", content="Be brief."), user("Remember: my daughter is allergic to peanuts."))
    harness.sessions.add_pin("t", "s", "The user's daughter is allergic to peanuts.")
    harness.send(Message(role="user", name="pin", content="Always answer in metric units."))
    outcomes = [harness.send(user(chatter(i, rng))) for i in range(248)]
    return LongSession(harness, outcomes)


def test_pins_survive_500_turns(pinned_long_session):
    for outcome in pinned_long_session.outcomes:
        plan = outcome.plan
        pins = "\n".join(m.text() for s in plan.sections if s.name == "pins" for m in s.messages)
        assert "allergic to peanuts" in pins and "metric units" in pins


def test_the_echo_counts_what_was_sent(pinned_long_session):
    for outcome in pinned_long_session.outcomes:
        assert outcome.completion.message.content.startswith(f"[echo] received {len(outcome.plan.messages)} messages")


def test_a_500_turn_session_is_evicted_many_times(pinned_long_session):
    harness = pinned_long_session.harness
    assert harness.store.meta[("t", "s")].last_seq == 500
    assert harness.compactions > 10  # the history really was evicted, many times


@pytest.fixture(scope="module")
def overflowing_session() -> Harness:
    """120 turns on a 768-token budget with no consumer: every overflow must compact synchronously."""
    rng = random.Random(2)
    harness = Harness(budget=768, drain=False)
    for i in range(120):
        harness.send(user(chatter(i, rng) * rng.randint(1, 3)))
    return harness


def test_budget_is_never_exceeded(overflowing_session):
    for plan in overflowing_session.plans:
        assert count_messages(plan.messages) + plan.budget.output_reserve <= 768


def test_the_plan_reports_the_tokens_it_uses(overflowing_session):
    for plan in overflowing_session.plans:
        assert plan.budget.used_tokens == count_messages(plan.messages)


def test_evicted_turns_are_kept(overflowing_session):
    assert len(overflowing_session.store.rows[("t", "s")]) == 240  # eviction summarises; it never deletes
    assert overflowing_session.store.meta[("t", "s")].evicted_through > 0


def test_prefix_is_byte_identical_between_compactions():
    rng = random.Random(3)
    harness = Harness(budget=2048)
    harness.send(Message(role="system", content=SYSTEM), user("hello"))
    harness.sessions.add_pin("t", "s", "Never book flights before 9am.")
    for i in range(80):
        harness.send(user(chatter(i, rng)))
    stable = ("system", "pins", "summaries", "recent")
    checked = 0
    for before, after in zip(harness.plans, harness.plans[1:], strict=False):
        if before.summarised != after.summarised or not before.sections[1].messages:
            continue  # a compaction (or the first pin) happened in between: the prefix may change there only
        prefix = [m.model_dump_json() for s in before.sections if s.name in stable for m in s.messages]
        later = [m.model_dump_json() for s in after.sections if s.name in stable for m in s.messages]
        assert later[: len(prefix)] == prefix
        checked += 1
    assert checked > 40


@pytest.fixture(scope="module")
def summarised_session() -> Harness:
    rng = random.Random(4)
    harness = Harness(budget=1024)
    for i in range(150):
        harness.send(user(chatter(i, rng)))
    return harness


def test_summaries_are_append_only_between_consolidations(summarised_session):
    ranges = [p.summarised for p in summarised_session.plans]
    for before, after in itertools.pairwise(ranges):
        if after[: len(before)] != before:  # a consolidation folds the oldest epochs into one
            assert after[0][0] == 1 and after[0][1] >= before[0][1]


def test_summaries_cover_the_oldest_turns_without_gaps(summarised_session):
    final = summarised_session.plans[-1]
    covered = [seq for first, last in final.summarised for seq in range(first, last + 1)]
    assert covered == list(range(1, len(covered) + 1))


def test_summaries_stay_within_their_share_of_the_budget(summarised_session):
    final = summarised_session.plans[-1]
    summary_tokens = sum(s.tokens for s in final.sections if s.name == "summaries")
    assert summary_tokens <= final.budget.input_budget * ContextConfig().summary_share


def test_a_pin_that_would_not_leave_room_is_refused():
    harness = Harness(budget=300)
    harness.send(user("hi"))
    with pytest.raises(ContextBudgetExceeded):
        harness.sessions.add_pin("t", "s", "constraint " * 400)
