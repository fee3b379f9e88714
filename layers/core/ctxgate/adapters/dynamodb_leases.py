"""Session leases in the sessions table (single-flight turns), for :class:`DynamoSessionStore`.

    pk = "T#{tenant}#S#{session}"   sk = "LEASE"   holder, lease_until, held_since (epoch seconds), purge_at (TTL),
                                                     typical_hold (seconds, kept when the lease is free)

The table's TTL is on ``purge_at``, which only lease items carry: a lease whose holder died and that no later turn
reclaimed is removed a day after it expired.
"""

from __future__ import annotations

from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure
from ctxgate.sessions.models import LeaseAttempt

LEASE = "LEASE"
LEASE_PURGE_AFTER_SECONDS = 24 * 3600


def session_pk(tenant: str, session_id: str) -> str:
    return f"T#{tenant}#S#{session_id}"


class DynamoSessionLeases:
    table: str
    ddb: Any

    def try_acquire(self, tenant: str, session_id: str, holder: str, *, now: float, until: float) -> LeaseAttempt:
        from botocore.exceptions import ClientError

        try:
            response = self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": LEASE}},
                UpdateExpression="SET holder = :holder, lease_until = :until, held_since = :now, purge_at = :purge",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now OR holder = :holder",
                ExpressionAttributeValues={
                    ":holder": {"S": holder},
                    ":until": {"N": repr(until)},
                    ":now": {"N": repr(now)},
                    # A lease whose holder died is reclaimed by the next turn; one nobody reclaims is removed by
                    # the table's TTL on purge_at, which no other item carries.
                    ":purge": {"N": str(int(until) + LEASE_PURGE_AFTER_SECONDS)},
                },
                ReturnValues="ALL_OLD",
                # A busy lease answers with its item: the waiter learns since when it is held, at no extra call.
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if is_condition_failure(error):
                item = error.response.get("Item") or {}
                return LeaseAttempt(
                    acquired=False, held_since=_number(item, "held_since"), typical_hold=_number(item, "typical_hold")
                )
            raise
        return LeaseAttempt(acquired=True, typical_hold=_number(response.get("Attributes") or {}, "typical_hold"))

    def release(self, tenant: str, session_id: str, holder: str, *, typical_hold: float | None) -> None:
        from botocore.exceptions import ClientError

        key = {"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": LEASE}}
        try:
            if typical_hold is None:
                self.ddb.delete_item(
                    TableName=self.table,
                    Key=key,
                    ConditionExpression="holder = :holder",
                    ExpressionAttributeValues={":holder": {"S": holder}},
                )
                return
            # The item stays (without a holder) to carry typical_hold. It belongs to a session that stored a turn:
            # deleting the session deletes it with the rest of its partition, and the TTL on purge_at removes it a
            # day after the last turn's deadline.
            self.ddb.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="REMOVE holder, lease_until, held_since SET typical_hold = :typical",
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}, ":typical": {"N": repr(round(typical_hold, 3))}},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise


def _number(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if value else None
