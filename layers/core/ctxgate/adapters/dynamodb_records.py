"""Records stored with a session, and the writes that keep a branch's ancestors alive (the key layout is in
:mod:`ctxgate.adapters.dynamodb_sessions`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ctxgate.adapters.dynamodb_leases import session_pk
from ctxgate.sessions.models import Segment, SessionRecord

RECORD_REF = "XREF#R#"
BRANCH_REF = "XREF#B#"
RECORD = "RECORD"


def record_pk(tenant: str, kind: str, record_id: str) -> str:
    return f"T#{tenant}#R#{kind}#{record_id}"


def record_item(tenant: str, session_id: str, record: SessionRecord) -> dict[str, Any]:
    return {
        "pk": {"S": record_pk(tenant, record.kind, record.id)},
        "sk": {"S": RECORD},
        "session_id": {"S": session_id},
        "body": {"S": record.body},
    }


def record_ref(tenant: str, session_id: str, kind: str, record_id: str) -> dict[str, Any]:
    return {"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": f"{RECORD_REF}{kind}#{record_id}"}}


def record_puts(table: str, tenant: str, session_id: str, records: list[SessionRecord]) -> list[dict[str, Any]]:
    """Transaction items creating ``records`` (each must be new) and their references in the session."""
    actions: list[dict[str, Any]] = []
    for record in records:
        item = record_item(tenant, session_id, record)
        actions.append({"Put": {"TableName": table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}})
        actions.append({"Put": {"TableName": table, "Item": record_ref(tenant, session_id, record.kind, record.id)}})
    return actions


def keep_alive(table: str, tenant: str, lineage: list[Segment], expires_at: int) -> list[dict[str, Any]]:
    """Transaction items moving a branch's ancestors' expiry with its own (an ancestor that is gone, or being
    deleted, fails it: a branch never outlives the turns it reads)."""
    return [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": session_pk(tenant, segment.session_id)}, "sk": {"S": "META"}},
                "UpdateExpression": "SET #exp = :exp",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(deleting)",
                "ExpressionAttributeNames": {"#exp": "expires_at"},
                "ExpressionAttributeValues": {":exp": {"N": str(expires_at)}},
            }
        }
        for segment in lineage
    ]


def unlink_session(
    ddb: Any,
    table: str,
    tenant: str,
    session_id: str,
    keys: list[dict[str, Any]],
    lineage: list[Segment],
    delete_session: Callable[[str, str], object],
) -> None:
    """Delete what lives outside a session's partition but only through it, given its items' ``keys``: the records
    stored with it, its branches (``delete_session`` deletes each, recursively) and its markers in its ancestors."""
    for key in keys:
        sk = key["sk"]["S"]
        if sk.startswith(BRANCH_REF):
            delete_session(tenant, sk[len(BRANCH_REF) :])
        elif sk.startswith(RECORD_REF):
            kind, _, record_id = sk[len(RECORD_REF) :].partition("#")
            ddb.delete_item(TableName=table, Key={"pk": {"S": record_pk(tenant, kind, record_id)}, "sk": {"S": RECORD}})
    for segment in lineage:
        ref = {"pk": {"S": session_pk(tenant, segment.session_id)}, "sk": {"S": BRANCH_REF + session_id}}
        ddb.delete_item(TableName=table, Key=ref)
