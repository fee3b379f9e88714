"""DynamoDB (+ S3 for large bodies) implementation of :class:`ctxgate.cache.ports.CacheStore`.

Its own table, with TTL on ``expires_at``; every key starts with the tenant::

    pk = "X#{tenant}#{exact key}"   sk = "X"                          one exact entry
    pk = "S#{tenant}#{scope}"       sk = "{created ms:013d}#{id}"     one semantic entry (prompt, vector, answer,
                                                                      served_by, last_used ms)
    pk = "O#{tenant}#{session}"     sk = "{entry pk}|{entry sk}"      the session index: one item per entry a
                                                                      stateful turn of the session stored

An entry a session's turn stores belongs to that session: it holds the session's text (the exact key covers the
whole assembled context; a semantic scope's fingerprint does too). It is written in one transaction with its index
item and a condition that the session's META exists and is not being deleted, so a turn racing
``DELETE /v1/sessions/{id}`` either lands before the delete (and the delete's :meth:`forget_session` finds it) or
is refused. An exact entry two sessions wrote alike (same context, same model) goes when either is deleted: it
holds both sessions' text. Entries of stateless requests belong to no session and expire by TTL.

Semantic scopes are bounded: after a put, while a scope holds more than ``max_entries_per_scope`` entries, the
least recently used one (expired ones first) is deleted from the table, its S3 body with it. A hit records its
use in ``last_used`` (at most once per ``LAST_USE_RESOLUTION_MS``, since each write costs the item's size).

A process keeps, per scope, only what a lookup compares (ids, prompts, vectors, last uses); the response is
fetched on a hit. Scopes are read incrementally: a process asks only for sort keys newer than the newest it has
seen (less a small overlap for concurrent writers' clocks), at most once per ``refresh_seconds`` per scope.
Entries this process writes are visible to it at once; another process's within ``refresh_seconds``. An entry
another process evicted is noticed when a hit or an eviction finds it gone. At most ``max_scopes_in_memory``
scopes are kept, the least recently used forgotten first (they are read again when needed).
"""

from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctxgate.adapters.dynamodb_cache_index import DynamoCacheSessionIndex
from ctxgate.adapters.dynamodb_common import query_pages
from ctxgate.adapters.s3_layout import cache_body_key
from ctxgate.aws import client
from ctxgate.cache.models import CachedResponse, SemanticEntry, SemanticIndex
from ctxgate.sessions.ports import BlobStore

CACHE_TAG = "ctxgate-kind=cache"  # S3 lifecycle expires tagged objects (see template.yaml)
LAST_USE_RESOLUTION_MS = 60_000
READ_OVERLAP_MS = 5_000
INDEX_ATTRIBUTES = "sk, prompt, vector, answer_id, served_by, expires_at, last_used"
UNUSED_SINCE = "attribute_exists(pk) AND (attribute_not_exists(last_used) OR last_used <= :seen)"


def semantic_sk(entry: SemanticEntry) -> str:
    return f"{round(entry.created_at * 1000):013d}#{entry.id}"


@dataclass
class _Scope:
    """One scope as this process knows it: entries and their float32 vectors row for row, and each entry's last
    use (ms)."""

    entries: list[SemanticEntry] = field(default_factory=list)
    rows: list[Any] = field(default_factory=list)
    last_used: dict[str, int] = field(default_factory=dict)
    newest_sk: str = ""
    refreshed: float = float("-inf")

    def add(self, entry: SemanticEntry, vector: Any, last_used: int) -> None:
        if entry.id in self.last_used:
            return
        self.entries.append(entry)
        self.rows.append(vector)
        self.last_used[entry.id] = last_used

    def forget(self, entry_id: str) -> None:
        for index, entry in enumerate(self.entries):
            if entry.id == entry_id:
                del self.entries[index], self.rows[index]
                self.last_used.pop(entry_id, None)
                return


class DynamoCacheStore(DynamoCacheSessionIndex):
    def __init__(
        self,
        table: str,
        blobs: BlobStore,
        *,
        offload_threshold_bytes: int,
        max_entries_per_scope: int,
        refresh_seconds: float = 1.0,
        max_scopes_in_memory: int = 64,
        last_use_resolution_ms: int = LAST_USE_RESOLUTION_MS,
        dynamodb: Any = None,
        clock: Callable[[], float] = time.time,
        sessions_table: str | None = None,
    ) -> None:
        """``sessions_table``: the sessions table whose META conditions a session's entries (None: unconditioned,
        for a cache used without sessions)."""
        if max_entries_per_scope < 1:
            raise ValueError("a semantic scope holds at least one entry")
        self.table = table
        self.sessions_table = sessions_table
        self.blobs = blobs
        self.offload_threshold = offload_threshold_bytes
        self.max_entries = max_entries_per_scope
        self.refresh_seconds = refresh_seconds
        self.max_scopes = max_scopes_in_memory
        self.last_use_resolution_ms = last_use_resolution_ms
        self.clock = clock
        self._ddb = dynamodb
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    # -- bodies ------------------------------------------------------------------------------------------------------

    def _body(self, tenant: str, name: str, response: CachedResponse) -> dict[str, Any]:
        body = response.model_dump_json()
        if len(body.encode()) <= self.offload_threshold:
            return {"response": {"S": body}}
        key = cache_body_key(tenant, name)
        self.blobs.put(key, body.encode(), tagging=CACHE_TAG)
        return {"body_key": {"S": key}}

    def _response(self, item: dict[str, Any]) -> CachedResponse:
        if "body_key" in item:
            return CachedResponse.model_validate_json(self.blobs.get(item["body_key"]["S"]))
        return CachedResponse.model_validate_json(item["response"]["S"])

    # -- exact -------------------------------------------------------------------------------------------------------

    def get_exact(self, tenant: str, key: str) -> CachedResponse | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"X#{tenant}#{key}"}, "sk": {"S": "X"}}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= self.clock():
            return None
        return self._response(item)

    def put_exact(
        self, tenant: str, key: str, response: CachedResponse, *, expires_at: int, session_id: str | None = None
    ) -> bool:
        item = {
            "pk": {"S": f"X#{tenant}#{key}"},
            "sk": {"S": "X"},
            "expires_at": {"N": str(expires_at)},
            **self._body(tenant, key, response),
        }
        return self._write(tenant, item, session_id)

    # -- semantic ----------------------------------------------------------------------------------------------------

    def put_semantic(
        self,
        tenant: str,
        scope: str,
        entry: SemanticEntry,
        response: CachedResponse,
        vector: Any,
        *,
        session_id: str | None = None,
    ) -> bool:
        import numpy as np

        pk = f"S#{tenant}#{scope}"
        now_ms = int(self.clock() * 1000)
        row = np.asarray(vector, dtype=np.float32)
        item = {
            "pk": {"S": pk},
            "sk": {"S": semantic_sk(entry)},
            "prompt": {"S": entry.prompt},
            "vector": {"B": row.astype("<f4").tobytes()},
            "answer_id": {"S": entry.answer_id},
            "served_by": {"S": entry.served_by},
            "expires_at": {"N": str(entry.expires_at)},
            "last_used": {"N": str(now_ms)},
            **self._body(tenant, f"semantic-{entry.id}", response),
        }
        if not self._write(tenant, item, session_id):
            return False
        self._refresh(pk, force=True)  # count what other processes wrote too
        with self._lock:
            self._scope(pk).add(entry, row, now_ms)  # visible to this process at once
        self._evict_beyond_bound(pk)
        return True

    def semantic_index(self, tenant: str, scope: str) -> SemanticIndex:
        import numpy as np

        pk = f"S#{tenant}#{scope}"
        self._refresh(pk)
        now = self.clock()
        with self._lock:
            known = self._scope(pk)
            live = [i for i, e in enumerate(known.entries) if e.expires_at > now]
            entries = [known.entries[i] for i in live]
            rows = [known.rows[i] for i in live]
        matrix = np.vstack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        return SemanticIndex(entries, matrix)

    def semantic_response(self, tenant: str, scope: str, entry: SemanticEntry) -> CachedResponse | None:
        from botocore.exceptions import ClientError

        pk = f"S#{tenant}#{scope}"
        key = {"pk": {"S": pk}, "sk": {"S": semantic_sk(entry)}}
        now_ms = int(self.clock() * 1000)
        with self._lock:
            last_used = self._scope(pk).last_used.get(entry.id, 0)
        if now_ms - last_used < self.last_use_resolution_ms:
            # Consistent: an entry a session delete removed must never be served from a stale replica.
            item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        else:
            try:
                item = self.ddb.update_item(
                    TableName=self.table,
                    Key=key,
                    UpdateExpression="SET last_used = :now",
                    ConditionExpression="attribute_exists(pk)",  # never recreate an evicted entry
                    ExpressionAttributeValues={":now": {"N": str(now_ms)}},
                    ReturnValues="ALL_NEW",
                )["Attributes"]
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                item = None
        with self._lock:
            known = self._scope(pk)
            if item is None or int(item["expires_at"]["N"]) <= self.clock():
                known.forget(entry.id)
                return None
            known.last_used[entry.id] = _last_used(item)
        return self._response(item)

    # -- the bound -----------------------------------------------------------------------------------------------------

    def _evict_beyond_bound(self, pk: str) -> None:
        """Delete least recently used entries (expired first) until the scope is within its bound. A delete is
        conditional on the last use this process saw, so an entry another process used since is not evicted for
        a stale reading: its last use is re-read and the next candidate is tried."""
        from botocore.exceptions import ClientError

        for _ in range(4 * self.max_entries + 8):  # each round evicts or corrects one entry; this bounds a pathology
            now = self.clock()
            with self._lock:
                known = self._scope(pk)
                if len(known.entries) <= self.max_entries:
                    return
                victim = min(known.entries, key=lambda e: (e.expires_at > now, known.last_used.get(e.id, 0)))
                seen = known.last_used.get(victim.id, 0)
            key = {"pk": {"S": pk}, "sk": {"S": semantic_sk(victim)}}
            try:
                old = self.ddb.delete_item(
                    TableName=self.table,
                    Key=key,
                    ConditionExpression=UNUSED_SINCE,
                    ExpressionAttributeValues={":seen": {"N": str(seen)}},
                    ReturnValues="ALL_OLD",
                ).get("Attributes", {})
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise
                current = self.ddb.get_item(
                    TableName=self.table, Key=key, ProjectionExpression="pk, last_used", ConsistentRead=True
                ).get("Item")
                with self._lock:
                    if current is None:  # another process evicted it
                        self._scope(pk).forget(victim.id)
                    else:
                        self._scope(pk).last_used[victim.id] = _last_used(current)
                continue
            if "body_key" in old:
                self.blobs.delete(old["body_key"]["S"])
            with self._lock:
                self._scope(pk).forget(victim.id)

    # -- memory ----------------------------------------------------------------------------------------------------

    def _scope(self, pk: str) -> _Scope:
        """The scope's in-memory state (created empty), marked most recently used; callers hold the lock."""
        known = self._scopes.get(pk)
        if known is None:
            known = self._scopes[pk] = _Scope()
            while len(self._scopes) > self.max_scopes:
                self._scopes.popitem(last=False)
        self._scopes.move_to_end(pk)
        return known

    def _refresh(self, pk: str, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            known = self._scope(pk)
            if not force and now - known.refreshed < self.refresh_seconds:
                return
            known.refreshed = now
            since = known.newest_sk
        fresh = self._read_since(pk, since)
        with self._lock:
            known = self._scope(pk)
            for entry, vector, last_used, sk in fresh:
                known.add(entry, vector, last_used)
                known.newest_sk = max(known.newest_sk, sk)

    def _read_since(self, pk: str, newest: str) -> list[tuple[SemanticEntry, Any, int, str]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": INDEX_ATTRIBUTES,  # never the response: it is fetched on a hit
            "ConsistentRead": True,
        }
        if newest:  # what was written since this process last looked, less an overlap for other writers' clocks
            since = max(0, int(newest.split("#", 1)[0]) - READ_OVERLAP_MS)
            kwargs["KeyConditionExpression"] += " AND sk > :since"
            kwargs["ExpressionAttributeValues"][":since"] = {"S": f"{since:013d}"}
        return [(*self._entry(item), item["sk"]["S"]) for item in query_pages(self.ddb, **kwargs)]

    @staticmethod
    def _entry(item: dict[str, Any]) -> tuple[SemanticEntry, Any, int]:
        import numpy as np

        vector = item["vector"]["B"]
        if isinstance(vector, str):  # some clients hand binary attributes back base64-encoded
            vector = base64.b64decode(vector)
        created_ms, entry_id = item["sk"]["S"].split("#", 1)
        entry = SemanticEntry(
            id=entry_id,
            prompt=item["prompt"]["S"],
            answer_id=item["answer_id"]["S"],
            served_by=item.get("served_by", {}).get("S", ""),  # entries written before served_by was recorded
            created_at=int(created_ms) / 1000,
            expires_at=int(item["expires_at"]["N"]),
        )
        return entry, np.frombuffer(vector, dtype="<f4").astype(np.float32), _last_used(item)


def _last_used(item: dict[str, Any]) -> int:
    """An entry's last use in ms; entries written before uses were recorded count from their creation."""
    if "last_used" in item:
        return int(item["last_used"]["N"])
    return int(item["sk"]["S"].split("#", 1)[0]) if "sk" in item else 0
