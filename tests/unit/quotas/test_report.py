"""The usage report: periods, groupings, sums and cost."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from ctxgate.errors import InvalidRequest
from ctxgate.quotas.models import UsageRecord
from ctxgate.quotas.report import parse_group_by, parse_period, usage_report

RECORDS = [
    UsageRecord("acme", "2026-03-01", "k1", "a", requests=2, input_tokens=10, cost_usd=Decimal("0.0000015")),
    UsageRecord("acme", "2026-03-01", None, "b", requests=1, output_tokens=5, cache_hits=1),
    UsageRecord("acme", "2026-03-02", "k1", "b", requests=4, cached_input_tokens=3, cost_usd=Decimal("0.25")),
]


def test_a_period_defaults_to_the_month_so_far():
    assert parse_period(None, None, today=dt.date(2026, 3, 17)) == ("2026-03-01", "2026-03-17")
    assert parse_period("2026-02-27", "2026-03-02", today=dt.date(2026, 3, 17)) == ("2026-02-27", "2026-03-02")


@pytest.mark.parametrize(("start", "end"), [("2026-3-1", None), ("2026-03-05", "2026-03-04"), ("2024-01-01", None)])
def test_a_bad_period_is_refused(start, end):
    with pytest.raises(InvalidRequest):
        parse_period(start, end, today=dt.date(2026, 3, 17))


def test_grouping_by_model_sums_every_count_and_the_cost():
    report = usage_report("acme", "2026-03-01", "2026-03-02", "model", RECORDS)
    assert [(r["model"], r["requests"], r["cost_usd"]) for r in report["data"]] == [("a", 2, 0.000002), ("b", 5, 0.25)]
    assert report["total"] == {
        "requests": 7,
        "input_tokens": 10,
        "cached_input_tokens": 3,
        "output_tokens": 5,
        "cache_hits": 1,
        "cost_usd": 0.250002,
    }


def test_grouping_by_key_and_by_day():
    by_key = usage_report("acme", "2026-03-01", "2026-03-02", "key", RECORDS)["data"]
    assert [(r["key_id"], r["requests"]) for r in by_key] == [(None, 1), ("k1", 6)]
    by_day = usage_report("acme", "2026-03-01", "2026-03-02", parse_group_by(None), RECORDS)["data"]
    assert [(r["date"], r["requests"]) for r in by_day] == [("2026-03-01", 3), ("2026-03-02", 4)]
    with pytest.raises(InvalidRequest):
        parse_group_by("tenant")


@pytest.mark.parametrize(("start", "end"), [("", None), (None, ""), ("", "")])
def test_a_date_parameter_present_but_empty_is_malformed_not_absent(start, end):
    # GIVEN ?start= (found by schemathesis: it was served as if absent)
    # WHEN the period is parsed
    # THEN it is a 400, like any other malformed date
    with pytest.raises(InvalidRequest) as caught:
        parse_period(start, end, today=dt.date(2026, 11, 22))
    assert caught.value.code == "invalid_date"
