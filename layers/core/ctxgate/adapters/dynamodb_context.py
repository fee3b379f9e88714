"""DynamoDB/S3 implementation of :class:`ctxgate.context.ports.ContextStore`.

Extra items in a session's partition (see :mod:`ctxgate.adapters.dynamodb_sessions` for the rest)::

    sk = "PIN#{id}"                  a pinned constraint; never evicted
    sk = "EPOCH#{first_seq:010d}"    a summary of evicted turns first_seq..last_seq, with its recall shard keys

``META.evicted_through`` versions compactions the way ``META.last_seq`` versions appends. Recall shards are
immutable JSON objects in S3 under the session's prefix, cached in memory once read.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from ctxgate.adapters.dynamodb_branches import DynamoBranches
from ctxgate.adapters.dynamodb_common import is_condition_failure, query_all
from ctxgate.adapters.dynamodb_sessions import (
    EPOCH_PREFIX,
    LIFETIME_NAMES,
    LIFETIME_SETS,
    META,
    PIN_PREFIX,
    TURN_PREFIX,
    lifetime_values,
    pin_item,
    session_pk,
)
from ctxgate.adapters.s3_layout import SESSIONS_ROOT, parse_session_object, shard_key
from ctxgate.context.models import Epoch, RecallShard, StoredContext
from ctxgate.errors import SessionConflict
from ctxgate.sessions.models import Pin, SessionMeta
from ctxgate.sessions.ports import AppendConflict

SHARD_CACHE_SIZE = 512
_shard_cache: OrderedDict[str, RecallShard] = OrderedDict()
_shard_lock = threading.Lock()


def epoch_sk(first_seq: int) -> str:
    return f"{EPOCH_PREFIX}{first_seq:010d}"


class DynamoContextStore(DynamoBranches):
    def context(self, tenant: str, session_id: str) -> StoredContext | None:
        # EPOCH# < META < PIN# < TURN#: one query below "TURN#" reads everything but the turns.
        items = query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk < :turns",
            ExpressionAttributeValues={":pk": {"S": session_pk(tenant, session_id)}, ":turns": {"S": TURN_PREFIX}},
            ConsistentRead=True,
        )
        meta = self._live_meta(tenant, session_id, next((i for i in items if i["sk"]["S"] == META), None))
        if meta is None:
            return None
        pins = [
            Pin(
                id=i["sk"]["S"][len(PIN_PREFIX) :],
                content=i["content"]["S"],
                tokens=int(i["tokens"]["N"]),
                created_at=float(i["created_at"]["N"]),
            )
            for i in items
            if i["sk"]["S"].startswith(PIN_PREFIX)
        ]
        epochs = [Epoch.model_validate_json(i["epoch"]["S"]) for i in items if i["sk"]["S"].startswith(EPOCH_PREFIX)]
        return StoredContext(meta=meta, pins=pins, epochs=epochs)

    def add_pin(self, tenant: str, session_id: str, pin: Pin, *, now: float) -> None:
        pk = session_pk(tenant, session_id)
        expires_at = int(now) + self.ttl_seconds
        meta = {
            "TableName": self.table,
            "Key": {"pk": {"S": pk}, "sk": {"S": META}},
            "UpdateExpression": "SET created_at = if_not_exists(created_at, :now), updated_at = :now, "
            "last_seq = if_not_exists(last_seq, :zero), " + ", ".join(LIFETIME_SETS),
            "ConditionExpression": "attribute_not_exists(deleting)",  # never into a session being deleted
            "ExpressionAttributeNames": LIFETIME_NAMES,
            "ExpressionAttributeValues": {
                ":now": {"N": repr(now)},
                ":zero": {"N": "0"},
                **lifetime_values(pk, expires_at, self.expiry_shards),
            },
        }
        put = {"TableName": self.table, "Item": pin_item(pk, pin)}
        try:
            self.ddb.transact_write_items(TransactItems=[{"Update": meta}, {"Put": put}])
        except Exception as error:
            if is_condition_failure(error):
                raise SessionConflict(f"Session {session_id} is being deleted; retry the request.") from error
            raise

    def delete_pin(self, tenant: str, session_id: str, pin_id: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": PIN_PREFIX + pin_id}},
                ConditionExpression="attribute_exists(pk)",
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def commit_compaction(
        self,
        tenant: str,
        session_id: str,
        *,
        expected_evicted_through: int,
        evicted_through: int,
        put: list[Epoch],
        delete: list[Epoch],
    ) -> None:
        pk = session_pk(tenant, session_id)
        meta = self.get(tenant, session_id)
        if meta is None:
            raise AppendConflict(f"session {session_id} is gone")
        # Conditioned on the incarnation that was compacted too: a compaction that finishes after the session was
        # deleted (or deleted and created anew) can never write into, or recreate, a META.
        values: dict[str, Any] = {":new": {"N": str(evicted_through)}, ":inc": {"S": meta.incarnation}}
        # ... and on the session not being deleted: a delete marks META first, then lists what to remove.
        live = "incarnation = :inc AND attribute_not_exists(deleting)"
        if expected_evicted_through == 0:
            condition = f"{live} AND attribute_not_exists(evicted_through)"
        else:
            condition = f"{live} AND evicted_through = :expected"
            values[":expected"] = {"N": str(expected_evicted_through)}
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table,
                    "Key": {"pk": {"S": pk}, "sk": {"S": META}},
                    "UpdateExpression": "SET evicted_through = :new",
                    "ConditionExpression": condition,
                    "ExpressionAttributeValues": values,
                }
            },
        ]
        for epoch in put:
            item = {
                "pk": {"S": pk},
                "sk": {"S": epoch_sk(epoch.first_seq)},
                "epoch": {"S": epoch.model_dump_json()},
            }
            actions.append({"Put": {"TableName": self.table, "Item": item}})
        written = {e.first_seq for e in put}
        for old in delete:
            if old.first_seq not in written:
                key = {"pk": {"S": pk}, "sk": {"S": epoch_sk(old.first_seq)}}
                actions.append({"Delete": {"TableName": self.table, "Key": key}})
        try:
            self.ddb.transact_write_items(TransactItems=actions)
        except Exception as error:
            if is_condition_failure(error):
                raise AppendConflict(f"session {session_id} was compacted past {expected_evicted_through}") from error
            raise

    def put_shard(self, meta: SessionMeta, shard: RecallShard) -> str:
        key = shard_key(meta.tenant, meta.session_id, meta.incarnation, shard.first_seq, shard.last_seq)
        self.blobs.put(key, shard.model_dump_json().encode())
        _remember(key, shard)
        return key

    def discard_shard(self, key: str) -> None:
        """Delete a shard no epoch references (its compaction's commit was refused)."""
        with _shard_lock:
            _shard_cache.pop(key, None)
        self.blobs.delete(key)

    def sweep_orphans(self, now: float, *, grace_seconds: float, window_seconds: float | None) -> int:
        """Delete session objects that no item references: an offloaded turn body or a recall shard left by a crash
        between its upload and the DynamoDB write that would have referenced it. Returns how many went.

        An object is judged once it is ``grace_seconds`` old (far longer than any write takes). With
        ``window_seconds``, only objects that crossed that age in the last window are checked, so a scheduled
        sweep reads each partition about once; None checks every object old enough.
        """
        referenced: dict[tuple[str, str], set[str]] = {}
        deleted = 0
        for key, modified in self.blobs.list(SESSIONS_ROOT):
            age = now - modified
            if age < grace_seconds or (window_seconds is not None and age >= grace_seconds + window_seconds):
                continue
            parsed = parse_session_object(key)
            if parsed is None:
                continue
            tenant, session_id, _ = parsed
            if (tenant, session_id) not in referenced:
                referenced[(tenant, session_id)] = self._referenced_objects(tenant, session_id)
            if key not in referenced[(tenant, session_id)]:
                self.blobs.delete(key)
                deleted += 1
        return deleted

    def _referenced_objects(self, tenant: str, session_id: str) -> set[str]:
        items = query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": session_pk(tenant, session_id)}},
            ProjectionExpression="body_key, epoch",
            ConsistentRead=True,
        )
        keys = {i["body_key"]["S"] for i in items if "body_key" in i}
        for item in items:
            if "epoch" in item:
                keys.update(Epoch.model_validate_json(item["epoch"]["S"]).shards)
        return keys

    def get_shard(self, key: str) -> RecallShard:
        with _shard_lock:
            if key in _shard_cache:
                _shard_cache.move_to_end(key)
                return _shard_cache[key]
        shard = RecallShard.model_validate(json.loads(self.blobs.get(key)))
        _remember(key, shard)
        return shard


def _remember(key: str, shard: RecallShard) -> None:
    with _shard_lock:
        _shard_cache[key] = shard
        _shard_cache.move_to_end(key)
        while len(_shard_cache) > SHARD_CACHE_SIZE:
            _shard_cache.popitem(last=False)
