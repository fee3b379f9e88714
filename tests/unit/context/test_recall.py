"""Recall of evicted turns (``ctxgate.context.recall``): what is recalled, when, and where it goes in the context."""

from __future__ import annotations

import random

import pytest
from ctxgate.context.models import ContextConfig
from ctxgate.context.recall import is_question

from tests.unit.context.harness import Harness, chatter, user


@pytest.fixture(scope="module")
def passport_session() -> Harness:
    """A fact stated once, then evicted by 60 turns of small talk."""
    rng = random.Random(5)
    harness = Harness(budget=1024)
    harness.send(user("By the way, my passport number is stored with the embassy in Lisbon, renewal due March 2031."))
    for i in range(60):
        harness.send(user(chatter(i, rng)))
    return harness


def test_an_evicted_fact_is_recalled_for_a_related_question(passport_session):
    question = passport_session.sessions.inspect("t", "s", "When is my passport renewal due at the Lisbon embassy?")
    assert 1 in question.recalled
    recalled = next(s for s in question.sections if s.name == "recalled").messages[0].text()
    assert "renewal due March 2031" in recalled


def test_nothing_is_recalled_for_small_talk(passport_session):
    small_talk = passport_session.sessions.inspect("t", "s", "ok thanks")
    assert small_talk.recalled == []


@pytest.fixture(scope="module")
def ingrid_session() -> Harness:
    rng = random.Random(6)
    harness = Harness(budget=1024)
    harness.send(user("My sister Ingrid lives in Trondheim and keeps bees."))
    for i in range(60):
        harness.send(user(chatter(i, rng)))
    return harness


def test_recalled_turns_come_after_the_stable_prefix(ingrid_session):
    plan = ingrid_session.sessions.inspect("t", "s", "Where does Ingrid keep her bees?")
    names = [s.name for s in plan.sections]
    assert names == ["system", "pins", "summaries", "recent", "recalled", "new"]


def test_cache_breakpoints_stay_in_the_stable_prefix_when_turns_are_recalled(ingrid_session):
    plan = ingrid_session.sessions.inspect("t", "s", "Where does Ingrid keep her bees?")
    assert plan.recalled and all(b.section in ("system", "pins", "summaries", "recent") for b in plan.breakpoints)


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("When did Caroline go to the support group?", True),
        ("Did you finish the painting", True),
        ("remember the trip to Lisbon", True),
        ("so what did you think? I loved it", True),
        ("ok thanks", False),
        ("I went hiking with my dog yesterday.", False),
    ],
)
def test_questions_are_recognised(text, asks):
    assert is_question(text) is asks


def test_questions_use_the_looser_recall_gate():
    config = ContextConfig()
    assert config.recall_min_relevance_question < config.recall_min_relevance
