"""DynamoDB (+ S3 for large bodies) implementation of :class:`ctxgate.sessions.ports.SessionStore`.

Single-table layout, everything namespaced by tenant::

    pk = "T#{tenant}#S#{session}"   sk = "META"              session metadata; ``last_seq`` versions appends
    pk = "T#{tenant}#S#{session}"   sk = "TURN#{seq:010d}"   one turn; the message as JSON, or ``body_key`` into S3
    pk = "T#{tenant}#S#{session}"   sk = "LEASE"             who is serving the session's current turn, until when
    pk = "T#{tenant}#S#{session}"   sk = "XREF#R#{kind}#{id}" a record stored with the session (deleted with it)
    pk = "T#{tenant}#S#{session}"   sk = "XREF#B#{branch}"   a branch that shares this session's turns
    pk = "T#{tenant}#R#{kind}#{id}" sk = "RECORD"            the record itself (a response, a conversation)

A branch's META carries its ``lineage`` (see :mod:`ctxgate.sessions.lineage`). ``delete`` marks META ``deleting``
(every write into a session is conditioned on that mark's absence, so a racing write is refused), then deletes the
session's records and, through the XREF#B# markers, every branch that reads its turns.

A session expires whole. Only META carries ``expires_at`` (moved forward by every append, in the same write),
and no item has a DynamoDB TTL of its own, so nothing of a live session ever disappears piecemeal. META also
carries ``exp_shard``, the partition key of the sparse ``expiry`` index (``exp_shard``, ``expires_at``), which
the sweeper reads to delete every item and object of sessions idle past their TTL, all at once. Until it runs,
an expired session reads as gone (and is deleted on that read). ``incarnation`` is fresh for each creation of a
session id, so objects keyed by it (recall shards) can never leak into a new session that reuses the id.

An append is one ``TransactWriteItems``: the META update is conditioned on the ``last_seq`` that was read, and
each turn put on the turn not existing. So two writers can never both take the same sequence numbers, and a
failed model call (which happens before the append) leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from ctxgate.adapters.dynamodb_common import (
    MAX_TRANSACTION_ITEMS,
    delete_keys,
    is_condition_failure,
    partition_keys,
    query_pages,
)
from ctxgate.adapters.dynamodb_leases import DynamoSessionLeases, session_pk
from ctxgate.adapters.dynamodb_records import keep_alive, record_puts, unlink_session
from ctxgate.adapters.s3_layout import session_prefix, turn_body_key
from ctxgate.aws import client
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message
from ctxgate.sessions.models import Pin, Segment, SessionMeta, SessionRecord, Turn, TurnPage
from ctxgate.sessions.ports import AppendConflict, BlobStore, SessionDependent

META = "META"
TURN_PREFIX = "TURN#"
PIN_PREFIX = "PIN#"
EPOCH_PREFIX = "EPOCH#"
EXPIRY_INDEX = "expiry"
DEFAULT_EXPIRY_SHARDS = 16


def turn_sk(seq: int) -> str:
    return f"{TURN_PREFIX}{seq:010d}"


class DynamoSessionStore(DynamoSessionLeases):
    max_append_items = MAX_TRANSACTION_ITEMS

    def __init__(
        self,
        table: str,
        blobs: BlobStore,
        *,
        ttl_seconds: int,
        offload_threshold_bytes: int,
        dynamodb: Any = None,
        clock: Callable[[], float] = time.time,
        expiry_shards: int = DEFAULT_EXPIRY_SHARDS,
    ) -> None:
        self.table = table
        self.blobs = blobs
        self.ttl_seconds = ttl_seconds
        self.offload_threshold = offload_threshold_bytes
        self._ddb = dynamodb
        self.clock = clock
        self.expiry_shards = expiry_shards
        self.dependents: list[SessionDependent] = []
        """Told of every deleted session after its items went (the response cache forgets the session's entries)."""

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    # -- reads -------------------------------------------------------------------------------------------------

    def get(self, tenant: str, session_id: str) -> SessionMeta | None:
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": META}},
            ConsistentRead=True,
        ).get("Item")
        return self._live_meta(tenant, session_id, item)

    def _live_meta(self, tenant: str, session_id: str, item: dict[str, Any] | None) -> SessionMeta | None:
        if item is None:
            return None
        meta = parse_meta(tenant, session_id, item)
        if meta.expires_at <= self.clock() or "deleting" in item:
            # The sweeper deletes expired sessions on a schedule; until it has, an expired session is gone for us.
            # A session marked deleting is one whose delete was interrupted: finish it.
            self.delete(tenant, session_id)
            return None
        return meta

    def turns(
        self, tenant: str, session_id: str, *, after: int = 0, limit: int | None = None, through: int | None = None
    ) -> TurnPage:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": {"S": session_pk(tenant, session_id)},
                ":lo": {"S": turn_sk(after + 1)},
                ":hi": {"S": turn_sk(10**10 - 1 if through is None else through)},
            },
            "ConsistentRead": True,
        }
        if limit is not None:
            kwargs["Limit"] = limit + 1  # one more than asked tells whether there is a next page
        items = query_pages(self.ddb, limit=None if limit is None else limit + 1, **kwargs)
        turns = [self._turn(item) for item in items]
        if limit is not None and len(turns) > limit:
            return TurnPage(turns=turns[:limit], next_after=turns[limit - 1].seq)
        return TurnPage(turns=turns, next_after=None)

    def _turn(self, item: dict[str, Any]) -> Turn:
        body = self.blobs.get(item["body_key"]["S"]).decode() if "body_key" in item else item["body"]["S"]
        return Turn(
            seq=int(item["seq"]["N"]),
            message=Message.model_validate_json(body),
            created_at=float(item["created_at"]["N"]),
            tokens=int(item["tokens"]["N"]),
            deleted="deleted" in item,
        )

    # -- writes ------------------------------------------------------------------------------------------------

    def append(
        self,
        tenant: str,
        session_id: str,
        *,
        expected_last_seq: int,
        messages: list[Message],
        tokens: list[int],
        system_prompt: str | None,
        model: str,
        now: float,
        pins: list[Pin] | None = None,
        budget: tuple[int, int] | None = None,
        lineage: list[Segment] | None = None,
        records: list[SessionRecord] | None = None,
    ) -> list[Turn]:
        pins = pins or []
        extra = len(lineage or ()) + 2 * len(records or ())
        if len(messages) + len(pins) + extra + 1 > MAX_TRANSACTION_ITEMS:
            raise InvalidRequest(
                f"At most {MAX_TRANSACTION_ITEMS - 2} new messages fit in one stateful request.",
                code="too_many_messages",
            )
        pk = session_pk(tenant, session_id)
        expires_at = int(now) + self.ttl_seconds
        turns: list[Turn] = []
        offloaded: list[str] = []
        actions: list[dict[str, Any]] = []
        try:
            for offset, (message, count) in enumerate(zip(messages, tokens, strict=True), start=1):
                seq = expected_last_seq + offset
                body = message.model_dump_json(exclude_none=True)
                item: dict[str, Any] = {
                    "pk": {"S": pk},
                    "sk": {"S": turn_sk(seq)},
                    "seq": {"N": str(seq)},
                    "role": {"S": message.role},
                    "tokens": {"N": str(count)},
                    "created_at": {"N": repr(now)},
                }
                if len(body.encode()) > self.offload_threshold:
                    # The key is unique per attempt, so a losing writer can never overwrite a winner's body.
                    key = turn_body_key(tenant, session_id, seq)
                    self.blobs.put(key, body.encode())
                    offloaded.append(key)
                    item["body_key"] = {"S": key}
                else:
                    item["body"] = {"S": body}
                actions.append(
                    {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}}
                )
                turns.append(Turn(seq=seq, message=message, created_at=now, tokens=count))
            for pin in pins:
                actions.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": pin_item(pk, pin),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            update = self._meta_update(pk, expected_last_seq, len(messages), system_prompt, model, now, expires_at)
            if budget is not None:
                update["UpdateExpression"] += ", budget_tokens = :budget, output_reserve = :reserve"
                update["ExpressionAttributeValues"].update(
                    {":budget": {"N": str(budget[0])}, ":reserve": {"N": str(budget[1])}}
                )
            actions.insert(0, {"Update": update})
            actions.extend(record_puts(self.table, tenant, session_id, records or []))
            actions.extend(keep_alive(self.table, tenant, lineage or [], expires_at))
            self.ddb.transact_write_items(TransactItems=actions)
        except Exception as error:
            for key in offloaded:
                self.blobs.delete(key)
            if is_condition_failure(error):
                raise AppendConflict(f"session {session_id} moved past seq {expected_last_seq}") from error
            raise
        return turns

    def _meta_update(
        self,
        pk: str,
        expected_last_seq: int,
        count: int,
        system_prompt: str | None,
        model: str,
        now: float,
        expires_at: int,
    ) -> dict[str, Any]:
        names = {"#last": "last_seq", "#upd": "updated_at", "#model": "model", **LIFETIME_NAMES}
        values: dict[str, Any] = {
            ":new": {"N": str(expected_last_seq + count)},
            ":now": {"N": repr(now)},
            ":model": {"S": model},
            **lifetime_values(pk, expires_at, self.expiry_shards),
        }
        sets = ["#last = :new", "#upd = :now", "#model = :model", *LIFETIME_SETS]
        values[":expected"] = {"N": str(expected_last_seq)}
        if expected_last_seq == 0:
            # A session may exist without turns (a pin was added first); its first turn still creates it.
            condition = "(attribute_not_exists(#last) OR #last = :expected) AND attribute_not_exists(deleting)"
            names["#created"] = "created_at"
            sets.append("#created = if_not_exists(#created, :now)")
            if system_prompt is not None:
                names["#sys"] = "system_prompt"
                values[":sys"] = {"S": system_prompt}
                sets.append("#sys = :sys")
        else:
            condition = "#last = :expected AND attribute_not_exists(deleting)"
        return {
            "TableName": self.table,
            "Key": {"pk": {"S": pk}, "sk": {"S": META}},
            "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    def delete(self, tenant: str, session_id: str) -> bool:
        """Delete every item and object of the session, then what dependents keep for it (its cache entries).
        Returns False if the session had no items.

        META is first marked ``deleting``: from then on every write into the session (appends, pins, compaction
        commits, cache entries) is refused by its condition, so the listing below is complete and nothing can be
        written back after it. META goes last, so an interrupted delete leaves a marked session, which the next
        read or delete finishes. Dependents are told even when the session had no items (a retry of a delete
        interrupted after META went)."""
        pk = session_pk(tenant, session_id)
        self._mark_deleting(pk)
        keys = partition_keys(self.ddb, self.table, pk)
        meta = self.get_raw(tenant, session_id)
        unlink_session(self.ddb, self.table, tenant, session_id, keys, meta.lineage if meta else [], self.delete)
        if keys:  # turns and bodies first, META last: an interrupted delete leaves a session that can be deleted again
            keys.sort(key=lambda k: k["sk"]["S"] == META)
            self.blobs.delete_prefix(session_prefix(tenant, session_id))
            delete_keys(self.ddb, self.table, keys)
        for dependent in self.dependents:
            dependent.forget_session(tenant, session_id)
        return bool(keys)

    def _mark_deleting(self, pk: str) -> None:
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": META}},
                UpdateExpression="SET deleting = :yes",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":yes": {"BOOL": True}},
            )
        except Exception as error:
            if not is_condition_failure(error):
                raise

    # -- lifetime ----------------------------------------------------------------------------------------------

    def expired(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        """(tenant, session id) of up to ``limit`` sessions whose META expired before ``now``, from the expiry index."""
        found: list[tuple[str, str]] = []
        for shard in range(self.expiry_shards):
            items = query_pages(
                self.ddb,
                limit=limit - len(found),
                TableName=self.table,
                IndexName=EXPIRY_INDEX,
                KeyConditionExpression="exp_shard = :shard AND expires_at < :now",
                ExpressionAttributeValues={":shard": {"S": expiry_shard(shard)}, ":now": {"N": str(int(now))}},
            )
            found.extend(parse_pk(item["pk"]["S"]) for item in items)
            if len(found) >= limit:
                break
        return found

    def sweep_expired(self, now: float, *, limit: int = 100) -> int:
        """Delete every item and object of sessions idle past their TTL. Returns how many sessions went."""
        return sum(
            self.sweep_if_expired(tenant, session_id, now) for tenant, session_id in self.expired(now, limit=limit)
        )

    def sweep_if_expired(self, tenant: str, session_id: str, now: float) -> bool:
        """Delete the session if its META (read now, not from the index) is still expired at ``now``."""
        meta = self.get_raw(tenant, session_id)
        if meta is None or meta.expires_at >= now:  # gone already, or revived since the index was read
            return False
        return self.delete(tenant, session_id)

    def get_raw(self, tenant: str, session_id: str) -> SessionMeta | None:
        """The session's metadata even if it has expired (the sweeper decides with it)."""
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": META}},
            ConsistentRead=True,
        ).get("Item")
        return parse_meta(tenant, session_id, item) if item else None


def pin_item(pk: str, pin: Pin) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"S": PIN_PREFIX + pin.id},
        "content": {"S": pin.content},
        "tokens": {"N": str(pin.tokens)},
        "created_at": {"N": repr(pin.created_at)},
    }


def expiry_shard(number: int) -> str:
    return f"EXP#{number:02d}"


def parse_pk(pk: str) -> tuple[str, str]:
    """(tenant, session id) of a session partition key ``T#{tenant}#S#{session}``."""
    tenant, _, session_id = pk[2:].partition("#S#")
    return tenant, session_id


# What every write that creates or touches a session's META sets: its expiry (moved forward), its expiry-index
# shard and its incarnation (both fixed at creation).
LIFETIME_NAMES = {"#exp": "expires_at", "#shard": "exp_shard", "#inc": "incarnation"}
LIFETIME_SETS = ["#exp = :exp", "#shard = if_not_exists(#shard, :shard)", "#inc = if_not_exists(#inc, :inc)"]


def lifetime_values(pk: str, expires_at: int, shards: int) -> dict[str, Any]:
    shard = int(hashlib.sha256(pk.encode()).hexdigest(), 16) % shards
    return {":exp": {"N": str(expires_at)}, ":shard": {"S": expiry_shard(shard)}, ":inc": {"S": uuid.uuid4().hex}}


def _optional_int(item: dict[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def parse_meta(tenant: str, session_id: str, item: dict[str, Any]) -> SessionMeta:
    return SessionMeta(
        tenant=tenant,
        session_id=session_id,
        system_prompt=item["system_prompt"]["S"] if "system_prompt" in item else None,
        model=item["model"]["S"] if "model" in item else None,
        created_at=float(item["created_at"]["N"]),
        updated_at=float(item["updated_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
        last_seq=int(item["last_seq"]["N"]),
        evicted_through=_optional_int(item, "evicted_through") or 0,
        budget_tokens=_optional_int(item, "budget_tokens"),
        incarnation=item["incarnation"]["S"] if "incarnation" in item else "",
        output_reserve=_optional_int(item, "output_reserve"),
        lineage=[Segment.model_validate(s) for s in json.loads(item["lineage"]["S"])] if "lineage" in item else [],
    )
