"""Time in recall: the month and year words a turn is indexed with, and the periods a message names.

Turns carry the time they were stored (``Turn.created_at``, UTC). A message that names a time ("in May 2023",
"last May", "in 2022", "last month", "yesterday") names one or more periods; recall favours turns stored then.
Relative phrases are resolved against the time of the message, so the result depends on nothing but its inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHS = (
    "january february march april may june july august september october november december".split()  # noqa: SIM905
)
_MONTH_INDEX = {name: i for i, name in enumerate(MONTHS, start=1)} | {
    name[:3]: i for i, name in enumerate(MONTHS, start=1) if name != "may"
}
_MONTH_WORD = "|".join(sorted(_MONTH_INDEX, key=len, reverse=True))
# "May 2023", "May 23, 2023", "23 May, 2023", "last May", "in May" (capitalised: "may" is also a verb).
_MONTH_PHRASE = re.compile(
    rf"\b(?:(?P<last>last|this)\s+)?(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?(?P<month>(?i:{_MONTH_WORD}))\b\.?"
    rf"(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?,?(?:\s+(?P<year>(?:19|20)\d\d))?",
)
_YEAR = re.compile(r"\b(?:in|of|during|since|from)\s+(?P<year>(?:19|20)\d\d)\b", re.IGNORECASE)
_RELATIVE = re.compile(
    r"\b(?P<phrase>last year|this year|last month|this month|last week(?:end)?|this week(?:end)?|yesterday|today)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Period:
    """A half-open interval of epoch seconds, [start, end)."""

    start: float
    end: float

    def __contains__(self, timestamp: float) -> bool:
        return self.start <= timestamp < self.end


def time_terms(timestamp: float) -> list[str]:
    """The words a turn stored at ``timestamp`` is also indexed with: its month's name and its year."""
    if timestamp <= 0:
        return []
    moment = datetime.fromtimestamp(timestamp, UTC)
    return [MONTHS[moment.month - 1], str(moment.year)]


def _month(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return Period(start.timestamp(), end.timestamp())


def _year(year: int) -> Period:
    return Period(datetime(year, 1, 1, tzinfo=UTC).timestamp(), datetime(year + 1, 1, 1, tzinfo=UTC).timestamp())


def named_periods(text: str, now: float) -> list[Period]:
    """The periods ``text`` names, resolved against ``now`` (epoch seconds). Empty when it names none.

    A month without a year is its latest occurrence up to ``now`` ("last May" is the latest one before this
    month); a bare month word must be capitalised, because "may" is also a verb.
    """
    today = datetime.fromtimestamp(now, UTC)
    periods: list[Period] = []
    for match in _MONTH_PHRASE.finditer(text):
        word = match.group("month")
        if word == "may" or (word.islower() and not match.group("year") and not match.group("last")):
            continue
        month = _MONTH_INDEX[word.lower()]
        if match.group("year"):
            periods.append(_month(int(match.group("year")), month))
            continue
        this_year = month < today.month or (month == today.month and match.group("last") != "last")
        periods.append(_month(today.year if this_year else today.year - 1, month))
    for match in _YEAR.finditer(text):
        whole = _year(int(match.group("year")))
        if not any(p.start in whole for p in periods):  # "in May 2023" already named a month of it
            periods.append(whole)
    for match in _RELATIVE.finditer(text):
        phrase = match.group("phrase").lower()
        if phrase == "last year":
            periods.append(_year(today.year - 1))
        elif phrase == "this year":
            periods.append(_year(today.year))
        elif phrase == "last month":
            previous = today.replace(day=1) - timedelta(days=1)
            periods.append(_month(previous.year, previous.month))
        elif phrase == "this month":
            periods.append(_month(today.year, today.month))
        elif phrase in ("yesterday", "today"):
            periods.append(Period(now - 2 * 86400, now + 1))
        else:  # last/this week(end): the fortnight before the message
            periods.append(Period(now - 14 * 86400, now + 1))
    return periods
