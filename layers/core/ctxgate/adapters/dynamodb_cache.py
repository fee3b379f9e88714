"""DynamoDB (+ S3 for large bodies) implementation of :class:`ctxgate.cache.ports.CacheStore`.

Its own table, with TTL on ``expires_at``; every key starts with the tenant::

    pk = "X#{tenant}#{exact key}"   sk = "X"                          one exact entry
    pk = "S#{tenant}#{scope}"       sk = "{created ms:013d}#{id}"     one semantic entry (prompt, vector, answer)

Semantic scopes are read incrementally: a process remembers the entries it has seen and asks only for newer sort
keys, at most once per ``refresh_seconds`` per scope, so a lookup costs at most one small query however large the
scope has grown. Entries this process writes are visible to it at once; another process's become visible within
``refresh_seconds`` (exact entries are always read consistently).
"""

from __future__ import annotations

import base64
import struct
import threading
import time
from typing import Any

from ctxgate.adapters.dynamodb_common import query_pages
from ctxgate.adapters.s3_layout import cache_body_key
from ctxgate.aws import client
from ctxgate.cache.models import CachedResponse, SemanticEntry, SemanticIndex
from ctxgate.sessions.ports import BlobStore

CACHE_TAG = "ctxgate-kind=cache"  # S3 lifecycle expires tagged objects (see template.yaml)


def pack(vector: list[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def unpack(data: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(data) // 4}f", data))


class DynamoCacheStore:
    def __init__(
        self,
        table: str,
        blobs: BlobStore,
        *,
        offload_threshold_bytes: int,
        refresh_seconds: float = 1.0,
        dynamodb: Any = None,
    ) -> None:
        self.table = table
        self.blobs = blobs
        self.offload_threshold = offload_threshold_bytes
        self.refresh_seconds = refresh_seconds
        self._ddb = dynamodb
        self._scopes: dict[str, tuple[str, list[SemanticEntry], Any]] = {}
        self._refreshed: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

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

    def get_exact(self, tenant: str, key: str) -> CachedResponse | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": f"X#{tenant}#{key}"}, "sk": {"S": "X"}}, ConsistentRead=True
        ).get("Item")
        if item is None or int(item["expires_at"]["N"]) <= time.time():
            return None
        return self._response(item)

    def put_exact(self, tenant: str, key: str, response: CachedResponse, *, expires_at: int) -> None:
        item = {
            "pk": {"S": f"X#{tenant}#{key}"},
            "sk": {"S": "X"},
            "expires_at": {"N": str(expires_at)},
            **self._body(tenant, key, response),
        }
        self.ddb.put_item(TableName=self.table, Item=item)

    def put_semantic(self, tenant: str, scope: str, entry: SemanticEntry, vector: Any) -> None:
        sk = f"{int(entry.response.created_at * 1000):013d}#{entry.id}"
        item = {
            "pk": {"S": f"S#{tenant}#{scope}"},
            "sk": {"S": sk},
            "prompt": {"S": entry.prompt},
            "vector": {"B": pack([float(x) for x in vector])},
            "answer_id": {"S": entry.answer_id},
            "expires_at": {"N": str(entry.expires_at)},
            **self._body(tenant, f"semantic-{entry.id}", entry.response),
        }
        self.ddb.put_item(TableName=self.table, Item=item)
        # Visible to this process at once; the sort key is not recorded, so the next read still fetches it once.
        self._add(f"S#{tenant}#{scope}", [(entry, [float(x) for x in vector])], "")

    def semantic_index(self, tenant: str, scope: str) -> SemanticIndex:
        import numpy as np

        pk = f"S#{tenant}#{scope}"
        now = time.monotonic()
        with self._lock:
            last, _, _ = self._scopes.get(pk, ("", [], None))
            stale = now - self._refreshed.get(pk, -1e9) >= self.refresh_seconds
            if stale:
                self._refreshed[pk] = now
        if stale:
            self._add(pk, self._read_since(pk, last), last)
        with self._lock:
            _, entries, matrix = self._scopes.get(pk, ("", [], None))
            live = [e.expires_at > time.time() for e in entries]
            if not all(live):
                entries = [e for e, keep in zip(entries, live, strict=True) if keep]
                matrix = matrix[np.asarray(live)]
                self._scopes[pk] = (self._scopes[pk][0], entries, matrix)
        return SemanticIndex(entries, matrix if matrix is not None else np.zeros((0, 0), dtype=np.float32))

    def _read_since(self, pk: str, last: str) -> list[tuple[SemanticEntry, list[float], str]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        if last:  # only what was written since this process last looked
            kwargs["KeyConditionExpression"] += " AND sk > :last"
            kwargs["ExpressionAttributeValues"][":last"] = {"S": last}
        fresh = []
        for item in query_pages(self.ddb, **kwargs):
            entry, vector = self._entry(item)
            fresh.append((entry, vector, item["sk"]["S"]))
        return fresh

    def _add(self, pk: str, fresh: list[Any], last: str) -> None:
        """Merge entries into a scope's in-memory index (idempotent by entry id)."""
        import numpy as np

        with self._lock:
            known_last, entries, matrix = self._scopes.get(pk, ("", [], None))
            known = {e.id for e in entries}
            new = [item for item in fresh if item[0].id not in known]
            if new:
                rows = np.asarray([item[1] for item in new], dtype=np.float32)
                matrix = rows if matrix is None else np.vstack([matrix, rows])
                entries = entries + [item[0] for item in new]
            newest = max([known_last, last, *(item[2] for item in fresh if len(item) > 2)])
            self._scopes[pk] = (newest, entries, matrix)

    def _entry(self, item: dict[str, Any]) -> tuple[SemanticEntry, list[float]]:
        vector = item["vector"]["B"]
        if isinstance(vector, str):  # some clients hand binary attributes back base64-encoded
            vector = base64.b64decode(vector)
        entry = SemanticEntry(
            id=item["sk"]["S"].split("#", 1)[1],
            prompt=item["prompt"]["S"],
            answer_id=item["answer_id"]["S"],
            response=self._response(item),
            expires_at=int(item["expires_at"]["N"]),
        )
        return entry, unpack(vector)
