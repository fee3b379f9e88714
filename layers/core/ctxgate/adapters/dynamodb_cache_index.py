"""The response cache's per-session index, for :class:`ctxgate.adapters.dynamodb_cache.DynamoCacheStore`::

    pk = "O#{tenant}#{session}"   sk = "{entry pk}|{entry sk}"   entry_pk, entry_sk, expires_at (the entry's)

One item per cache entry a stateful turn of the session stored, written in the same transaction as the entry, with
a condition on the session's META (it exists and is not being deleted). ``forget_session`` deletes the entries,
their S3 bodies, what this process holds of them in memory, and the index items.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure, query_pages
from ctxgate.adapters.dynamodb_leases import session_pk
from ctxgate.sessions.ports import BlobStore


class DynamoCacheSessionIndex:
    table: str
    sessions_table: str | None
    blobs: BlobStore
    ddb: Any
    _lock: threading.RLock
    _scopes: OrderedDict[str, Any]

    def _write(self, tenant: str, item: dict[str, Any], session_id: str | None) -> bool:
        """Put an entry; with ``session_id``, together with its index item and only while the session lives.
        Returns False (and removes the entry's S3 body) if the session is gone or being deleted."""
        if session_id is None:
            self.ddb.put_item(TableName=self.table, Item=item)
            return True
        index = {
            "pk": {"S": f"O#{tenant}#{session_id}"},
            "sk": {"S": f"{item['pk']['S']}|{item['sk']['S']}"},
            "entry_pk": item["pk"],
            "entry_sk": item["sk"],
            "expires_at": item["expires_at"],  # the table's TTL takes the index item with its entry
        }
        actions: list[dict[str, Any]] = [
            {"Put": {"TableName": self.table, "Item": item}},
            {"Put": {"TableName": self.table, "Item": index}},
        ]
        if self.sessions_table is not None:
            key = {"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": "META"}}
            check = "attribute_exists(pk) AND attribute_not_exists(deleting)"
            actions.append(
                {"ConditionCheck": {"TableName": self.sessions_table, "Key": key, "ConditionExpression": check}}
            )
        try:
            self.ddb.transact_write_items(TransactItems=actions)
        except Exception as error:
            if not is_condition_failure(error):
                raise
            if "body_key" in item:
                self.blobs.delete(item["body_key"]["S"])
            return False
        return True

    def forget_session(self, tenant: str, session_id: str) -> int:
        """Delete every entry the session's turns stored (table, S3 body, this process's memory) and the index.
        Idempotent; an entry evicted or expired meanwhile is simply skipped. Returns how many entries went."""
        forgotten = 0
        items = query_pages(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"O#{tenant}#{session_id}"}},
            ConsistentRead=True,
        )
        for index in items:
            entry_pk, entry_sk = index["entry_pk"]["S"], index["entry_sk"]["S"]
            old = self.ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": entry_pk}, "sk": {"S": entry_sk}},
                ReturnValues="ALL_OLD",
            ).get("Attributes", {})
            if "body_key" in old:
                self.blobs.delete(old["body_key"]["S"])
            forgotten += bool(old)
            if entry_pk.startswith("S#"):
                with self._lock:
                    if entry_pk in self._scopes:
                        self._scopes[entry_pk].forget(entry_sk.split("#", 1)[1])
            self.ddb.delete_item(TableName=self.table, Key={"pk": index["pk"], "sk": index["sk"]})
        return forgotten
