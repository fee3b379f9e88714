"""Periods named in a message, resolved against the time it was sent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ctxgate.context.timeref import named_periods, time_terms


def at(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, 12, tzinfo=UTC).timestamp()


NOW = at(2023, 8, 20)


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("What did Maria donate in December 2022?", at(2022, 12, 5), at(2023, 1, 5)),
        ("Who did Maria have dinner with on May 3, 2023?", at(2023, 5, 30), at(2023, 6, 1)),
        ("What did Gina find on 1 February, 2023?", at(2023, 2, 1), at(2023, 3, 1)),
        ("When did Melanie go camping in June?", at(2023, 6, 10), at(2022, 6, 10)),
        ("What did we plan last May?", at(2023, 5, 10), at(2022, 5, 10)),
        ("Where did John travel in 2022?", at(2022, 3, 1), at(2023, 3, 1)),
        ("What did they see on the trip last year?", at(2022, 9, 1), at(2023, 1, 2)),
        ("What happened last month?", at(2023, 7, 31), at(2023, 8, 1)),
        ("What did you cook yesterday?", at(2023, 8, 19), at(2023, 8, 10)),
    ],
)
def test_a_named_time_covers_its_period_only(text, inside, outside):
    periods = named_periods(text, NOW)
    assert any(inside in p for p in periods)
    assert not any(outside in p for p in periods)


@pytest.mark.parametrize("text", ["You may want to rest.", "How was your weekend?", "I ate 2023 grapes"])
def test_a_message_naming_no_time_names_no_period(text):
    assert named_periods(text, NOW) == []


def test_a_turn_is_indexed_with_its_month_and_year():
    assert time_terms(at(2023, 5, 8)) == ["may", "2023"]
    assert time_terms(0) == []
