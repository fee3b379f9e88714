"""DynamoDB store of spend control (the usage table): per-key window counters, the usage ledger, run slots.

    pk = "K#{key_id}"        sk = "M#{epoch minute}"           requests, tokens in that minute      (TTL)
    pk = "K#{key_id}"        sk = "D#{YYYY-MM-DD}"             requests, tokens on that UTC day     (TTL)
    pk = "T#{tenant}#USAGE"  sk = "{day}#{key_id or -}#{model}"  the ledger row (no TTL: it is the bill)
    pk = "T#{tenant}#RUNS"   sk = "ACTIVE"                     runs: {run_id: expires_at} of live runs

A reservation is one conditional ``ADD`` per window (``attribute_not_exists(n) OR n <= :room``), so concurrent
reservations are serialized by DynamoDB on the item and can never push a counter past its limit. The day window is
reserved first; if the minute window then refuses, the day's reservation is given back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure, query_all
from ctxgate.auth.models import KeyLimits
from ctxgate.aws import client
from ctxgate.quotas.models import Counters, UsageDelta, UsageRecord, Windows
from ctxgate.quotas.ports import LimitReached

COUNTER_GRACE_SECONDS = 3600
"""How long a window's counter item outlives its window (TTL), for the headers of late settlements."""
LEDGER_FIELDS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "cache_hits", "cost_usd")


class DynamoQuotaStore:
    """Implements :class:`~ctxgate.quotas.ports.QuotaCounters`, ``UsageLedger`` and ``RunSlots``."""

    def __init__(self, table: str, dynamodb: Any = None) -> None:
        self.table = table
        self._ddb = dynamodb

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    # -- counters ----------------------------------------------------------------------------------------------

    def reserve(self, key_id: str, windows: Windows, *, tokens: int, limits: KeyLimits) -> Counters:
        day = minute = None
        if limits.tokens_per_day is not None:
            room = {"tokens": limits.tokens_per_day - tokens}
            day = self._add(_day_key(key_id, windows), 1, tokens, _day_expiry(windows), room)
            if day is None:
                raise LimitReached("day", self.current(key_id, windows, limits=limits))
        if limits.rpm is not None or limits.tpm is not None:
            room = {}
            if limits.rpm is not None:
                room["requests"] = limits.rpm - 1
            if limits.tpm is not None:
                room["tokens"] = limits.tpm - tokens
            minute = self._add(_minute_key(key_id, windows), 1, tokens, _minute_expiry(windows), room)
            if minute is None:
                if day is not None:
                    day = self._add(_day_key(key_id, windows), -1, -tokens, _day_expiry(windows))
                counters = self.current(key_id, windows, limits=limits)
                full = limits.rpm is not None and counters.minute_requests + 1 > limits.rpm
                raise LimitReached("requests" if full else "tokens", counters)
        return _counters(minute, day)

    def adjust(self, key_id: str, windows: Windows, *, requests: int, tokens: int, limits: KeyLimits) -> Counters:
        day = minute = None
        if limits.tokens_per_day is not None:
            day = self._add(_day_key(key_id, windows), requests, tokens, _day_expiry(windows))
        if limits.rpm is not None or limits.tpm is not None:
            minute = self._add(_minute_key(key_id, windows), requests, tokens, _minute_expiry(windows))
        return _counters(minute, day)

    def current(self, key_id: str, windows: Windows, *, limits: KeyLimits) -> Counters:
        day = minute = None
        if limits.tokens_per_day is not None:
            day = self._get(_day_key(key_id, windows))
        if limits.rpm is not None or limits.tpm is not None:
            minute = self._get(_minute_key(key_id, windows))
        return _counters(minute, day)

    def _add(
        self,
        key: dict[str, Any],
        requests: int,
        tokens: int,
        expires_at: int,
        room: dict[str, int] | None = None,
    ) -> dict[str, int] | None:
        """ADD to a counter item; with ``room``, only if each named counter is at most its room (else None)."""
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": key,
            "UpdateExpression": "ADD #requests :requests, #tokens :tokens SET #expires = :expires",
            "ExpressionAttributeNames": {"#requests": "requests", "#tokens": "tokens", "#expires": "expires_at"},
            "ExpressionAttributeValues": {
                ":requests": {"N": str(requests)},
                ":tokens": {"N": str(tokens)},
                ":expires": {"N": str(expires_at)},
            },
            "ReturnValues": "ALL_NEW",
        }
        if room:
            if min(room.values()) < 0:
                return None  # the request alone exceeds the limit: no stored value can make room
            clauses = []
            for name, value in room.items():
                clauses.append(f"(attribute_not_exists(#{name}) OR #{name} <= :room_{name})")
                request["ExpressionAttributeValues"][f":room_{name}"] = {"N": str(value)}
            request["ConditionExpression"] = " AND ".join(clauses)
        try:
            attributes = self.ddb.update_item(**request).get("Attributes", {})
        except ClientError as error:
            if room and is_condition_failure(error):
                return None
            raise
        return {name: int(attributes[name]["N"]) for name in ("requests", "tokens") if name in attributes}

    def _get(self, key: dict[str, Any]) -> dict[str, int]:
        item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item") or {}
        return {name: int(item[name]["N"]) for name in ("requests", "tokens") if name in item}

    # -- ledger ------------------------------------------------------------------------------------------------

    def record(self, tenant: str, key_id: str | None, model: str, day: str, delta: UsageDelta) -> None:
        values = {f":{name}": {"N": _number(getattr(delta, name))} for name in LEDGER_FIELDS}
        values.update({":day": {"S": day}, ":model": {"S": model}, ":key": {"S": key_id or "-"}})
        self.ddb.update_item(
            TableName=self.table,
            Key={"pk": {"S": _ledger_pk(tenant)}, "sk": {"S": f"{day}#{key_id or '-'}#{model}"}},
            UpdateExpression="ADD "
            + ", ".join(f"#{name} :{name}" for name in LEDGER_FIELDS)
            + " SET #day = :day, #model = :model, #key = :key",
            ExpressionAttributeNames={
                **{f"#{name}": name for name in LEDGER_FIELDS},
                "#day": "day",
                "#model": "model",
                "#key": "key_id",
            },
            ExpressionAttributeValues=values,
        )

    def usage(self, tenant: str, start: str, end: str) -> list[UsageRecord]:
        items = query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :start AND :end",
            ExpressionAttributeValues={
                ":pk": {"S": _ledger_pk(tenant)},
                ":start": {"S": start},
                ":end": {"S": f"{end}$"},  # "$" sorts right after the "#" that ends every day prefix
            },
        )
        return [
            UsageRecord(
                tenant=tenant,
                day=item["day"]["S"],
                key_id=None if item["key_id"]["S"] == "-" else item["key_id"]["S"],
                model=item["model"]["S"],
                **{
                    name: Decimal(item[name]["N"]) if name == "cost_usd" else int(item[name]["N"])
                    for name in LEDGER_FIELDS
                },
            )
            for item in items
        ]

    # -- run slots ---------------------------------------------------------------------------------------------

    def acquire(self, tenant: str, run_id: str, *, cap: int, expires_at: float, now: float) -> bool:
        from botocore.exceptions import ClientError

        key = _slots_key(tenant)
        self.ddb.update_item(  # the map must exist before one of its entries can be set
            TableName=self.table,
            Key=key,
            UpdateExpression="SET #runs = if_not_exists(#runs, :empty)",
            ExpressionAttributeNames={"#runs": "runs"},
            ExpressionAttributeValues={":empty": {"M": {}}},
        )
        for _ in range(2):
            try:
                self.ddb.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression="SET #runs.#run = :expires",
                    ConditionExpression="size(#runs) < :cap",
                    ExpressionAttributeNames={"#runs": "runs", "#run": run_id},
                    ExpressionAttributeValues={":expires": {"N": str(int(expires_at))}, ":cap": {"N": str(cap)}},
                )
                return True
            except ClientError as error:
                if not is_condition_failure(error):
                    raise
            if not self._drop_expired(tenant, now):
                return False
        return False

    def release(self, tenant: str, run_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=_slots_key(tenant),
                UpdateExpression="REMOVE #runs.#run",
                ConditionExpression="attribute_exists(#runs)",
                ExpressionAttributeNames={"#runs": "runs", "#run": run_id},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise

    def _drop_expired(self, tenant: str, now: float) -> bool:
        """Forget slots of runs that never reported their end (past their deadline); True if any were freed."""
        item = self.ddb.get_item(TableName=self.table, Key=_slots_key(tenant), ConsistentRead=True).get("Item") or {}
        runs = item.get("runs", {}).get("M", {})
        stale = [run_id for run_id, expires in runs.items() if float(expires["N"]) <= now]
        for run_id in stale:
            self.release(tenant, run_id)
        return bool(stale)


def _minute_key(key_id: str, windows: Windows) -> dict[str, Any]:
    return {"pk": {"S": f"K#{key_id}"}, "sk": {"S": f"M#{windows.minute}"}}


def _day_key(key_id: str, windows: Windows) -> dict[str, Any]:
    return {"pk": {"S": f"K#{key_id}"}, "sk": {"S": f"D#{windows.day}"}}


def _minute_expiry(windows: Windows) -> int:
    return (windows.minute + 1) * 60 + COUNTER_GRACE_SECONDS


def _day_expiry(windows: Windows) -> int:
    return int(windows.now + windows.day_reset) + COUNTER_GRACE_SECONDS


def _ledger_pk(tenant: str) -> str:
    return f"T#{tenant}#USAGE"


def _slots_key(tenant: str) -> dict[str, Any]:
    return {"pk": {"S": f"T#{tenant}#RUNS"}, "sk": {"S": "ACTIVE"}}


def _counters(minute: dict[str, int] | None, day: dict[str, int] | None) -> Counters:
    minute, day = minute or {}, day or {}
    return Counters(
        minute_requests=minute.get("requests", 0),
        minute_tokens=minute.get("tokens", 0),
        day_tokens=day.get("tokens", 0),
    )


def _number(value: int | Decimal) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)
