"""Forks, records and turn rewrites of :class:`ctxgate.adapters.dynamodb_context.DynamoContextStore` (the key
layout is in :mod:`ctxgate.adapters.dynamodb_sessions`; the branch model in :mod:`ctxgate.sessions.lineage`)."""

from __future__ import annotations

import json
from typing import Any

from ctxgate.adapters.dynamodb_common import MAX_TRANSACTION_ITEMS, is_condition_failure
from ctxgate.adapters.dynamodb_leases import session_pk
from ctxgate.adapters.dynamodb_records import (
    BRANCH_REF,
    RECORD,
    keep_alive,
    record_item,
    record_pk,
    record_puts,
    record_ref,
)
from ctxgate.adapters.dynamodb_sessions import (
    LIFETIME_NAMES,
    LIFETIME_SETS,
    META,
    DynamoSessionStore,
    lifetime_values,
    pin_item,
    turn_sk,
)
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message
from ctxgate.sessions.lineage import MAX_LINEAGE, branch_lineage
from ctxgate.sessions.models import SessionMeta, SessionRecord, StoredRecord
from ctxgate.sessions.ports import AppendConflict


class DynamoBranches(DynamoSessionStore):
    def fork(self, tenant: str, parent: SessionMeta, through: int, branch_id: str, *, now: float) -> SessionMeta:
        lineage = branch_lineage(parent, through)
        if len(lineage) > MAX_LINEAGE:
            raise InvalidRequest(f"A history may branch at most {MAX_LINEAGE} times deep.", code="branch_too_deep")
        stored = self.context(tenant, parent.session_id)  # type: ignore[attr-defined]
        pins = stored.pins if stored is not None else []
        pk = session_pk(tenant, branch_id)
        expires_at = int(now) + self.ttl_seconds
        values: dict[str, Any] = {
            ":now": {"N": repr(now)},
            ":seq": {"N": str(through)},
            ":lineage": {"S": json.dumps([s.model_dump() for s in lineage])},
            ":model": {"S": parent.model or ""},
            **lifetime_values(pk, expires_at, self.expiry_shards),
        }
        names = {"#c": "created_at", "#u": "updated_at", "#l": "last_seq", "#g": "lineage", "#m": "model"}
        sets = ["#c = :now", "#u = :now", "#l = :seq", "#g = :lineage", "#m = :model"]
        if parent.budget_tokens is not None and parent.output_reserve is not None:
            names.update({"#b": "budget_tokens", "#r": "output_reserve"})
            sets.append("#b = :budget, #r = :reserve")
            values.update({":budget": {"N": str(parent.budget_tokens)}, ":reserve": {"N": str(parent.output_reserve)}})
        meta = {
            "TableName": self.table,
            "Key": {"pk": {"S": pk}, "sk": {"S": META}},
            "UpdateExpression": "SET " + ", ".join([*sets, *LIFETIME_SETS]),
            "ConditionExpression": "attribute_not_exists(pk)",
            "ExpressionAttributeNames": {**names, **LIFETIME_NAMES},
            "ExpressionAttributeValues": values,
        }
        actions: list[dict[str, Any]] = [{"Update": meta}, *keep_alive(self.table, tenant, lineage, expires_at)]
        for segment in lineage:
            ref = {"pk": {"S": session_pk(tenant, segment.session_id)}, "sk": {"S": BRANCH_REF + branch_id}}
            actions.append({"Put": {"TableName": self.table, "Item": ref}})
        actions.extend({"Put": {"TableName": self.table, "Item": pin_item(pk, pin)}} for pin in pins)
        if len(actions) > MAX_TRANSACTION_ITEMS:
            raise InvalidRequest("This history has too many pins to be branched in one write.", code="branch_too_large")
        try:
            self.ddb.transact_write_items(TransactItems=actions)
        except Exception as error:
            if is_condition_failure(error):
                raise AppendConflict(f"session {parent.session_id} could not be branched") from error
            raise
        branch = self.get(tenant, branch_id)
        if branch is None:
            raise AppendConflict(f"branch {branch_id} vanished")
        return branch

    def get_record(self, tenant: str, kind: str, record_id: str) -> StoredRecord | None:
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": record_pk(tenant, kind, record_id)}, "sk": {"S": RECORD}},
            ConsistentRead=True,
        ).get("Item")
        if item is None:
            return None
        return StoredRecord(session_id=item["session_id"]["S"], body=item["body"]["S"])

    def put_record(self, tenant: str, session_id: str, record: SessionRecord, *, create: bool) -> bool:
        if create:
            actions = record_puts(self.table, tenant, session_id, [record])
        else:
            item = record_item(tenant, session_id, record)
            condition = "attribute_exists(pk) AND session_id = :sid"
            put = {"TableName": self.table, "Item": item, "ConditionExpression": condition}
            put["ExpressionAttributeValues"] = {":sid": {"S": session_id}}
            actions = [{"Put": put}]
        session = {"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": META}}
        live = "attribute_exists(pk) AND attribute_not_exists(deleting)"  # never into a session being deleted
        check = {"TableName": self.table, "Key": session, "ConditionExpression": live}
        try:
            self.ddb.transact_write_items(TransactItems=[{"ConditionCheck": check}, *actions])
        except Exception as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def delete_record(self, tenant: str, kind: str, record_id: str) -> bool:
        stored = self.get_record(tenant, kind, record_id)
        if stored is None:
            return False
        key = {"pk": {"S": record_pk(tenant, kind, record_id)}, "sk": {"S": RECORD}}
        self.ddb.delete_item(TableName=self.table, Key=key)
        self.ddb.delete_item(TableName=self.table, Key=record_ref(tenant, stored.session_id, kind, record_id))
        return True

    def replace_turn(self, tenant: str, session_id: str, seq: int, message: Message | None) -> bool:
        from botocore.exceptions import ClientError

        key = {"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": turn_sk(seq)}}
        if message is None:
            update = "SET deleted = :yes"  # kept (seq numbering is contiguous), but out of every context
            values: dict[str, Any] = {":yes": {"BOOL": True}}
        else:
            update = "SET body = :body REMOVE body_key"
            values = {":body": {"S": message.model_dump_json(exclude_none=True)}}
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True
