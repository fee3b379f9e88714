"""The usage report behind ``GET /v1/usage`` and ``ctxgate usage``: a period of a tenant's ledger, grouped."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Literal

from ctxgate.errors import InvalidRequest
from ctxgate.quotas.models import UsageRecord

GroupBy = Literal["day", "model", "key"]
GROUPINGS: tuple[GroupBy, ...] = ("day", "model", "key")
MAX_PERIOD_DAYS = 366
COUNTS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "cache_hits")


def parse_period(start: str | None, end: str | None, *, today: dt.date) -> tuple[str, str]:
    """``(start, end)`` as ``YYYY-MM-DD``. ``end`` defaults to today (UTC) and ``start`` to the first day of
    ``end``'s month. Raises :class:`InvalidRequest` for a malformed date, a reversed or an over-long period."""
    last = _date(end, "end") if end is not None else today  # present but empty is malformed, not absent
    first = _date(start, "start") if start is not None else last.replace(day=1)
    if first > last:
        raise InvalidRequest("start must not be after end.", code="invalid_period", param="start")
    if (last - first).days >= MAX_PERIOD_DAYS:
        raise InvalidRequest(f"A period spans at most {MAX_PERIOD_DAYS} days.", code="invalid_period", param="start")
    return first.isoformat(), last.isoformat()


def parse_group_by(value: str | None) -> GroupBy:
    if value is None:
        return "day"
    if value not in GROUPINGS:
        raise InvalidRequest(f"group_by is one of {', '.join(GROUPINGS)}.", param="group_by")
    return value  # type: ignore[return-value]


def usage_report(
    tenant: str, start: str, end: str, group_by: GroupBy, records: Iterable[UsageRecord]
) -> dict[str, Any]:
    """``{"object": "usage", "tenant", "start", "end", "group_by", "data": [rows], "total": {...}}``; each row
    names its group (``date``, ``model`` or ``key_id``; a JWT caller's usage has ``key_id`` null) and carries
    requests, input/cached input/output tokens, cache hits and ``cost_usd``, sorted by group."""
    groups: dict[Any, dict[str, Any]] = {}
    total = _empty()
    for record in records:
        group = {"day": record.day, "model": record.model, "key": record.key_id}[group_by]
        row = groups.setdefault(group, _empty())
        for sums in (row, total):
            for name in COUNTS:
                sums[name] += getattr(record, name)
            sums["cost_usd"] += record.cost_usd
    label = {"day": "date", "model": "model", "key": "key_id"}[group_by]
    data = [{label: group, **_rendered(sums)} for group, sums in sorted(groups.items(), key=lambda g: g[0] or "")]
    return {
        "object": "usage",
        "tenant": tenant,
        "start": start,
        "end": end,
        "group_by": group_by,
        "data": data,
        "total": _rendered(total),
    }


def _empty() -> dict[str, Any]:
    return {**dict.fromkeys(COUNTS, 0), "cost_usd": Decimal(0)}


def _rendered(sums: dict[str, Any]) -> dict[str, Any]:
    # Micro-dollars are finer than any price list; a float keeps the JSON a plain number.
    return {**sums, "cost_usd": float(sums["cost_usd"].quantize(Decimal("0.000001")))}


def _date(value: str, name: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date as YYYY-MM-DD.", code="invalid_date", param=name) from None
