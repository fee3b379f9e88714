"""Session leases in the sessions table (single-flight turns), for :class:`DynamoSessionStore`.

    pk = "T#{tenant}#S#{session}"   sk = "LEASE"   holder, lease_until (epoch seconds), purge_at (TTL)

The table's TTL is on ``purge_at``, which only lease items carry: a lease whose holder died and that no later turn
reclaimed is removed a day after it expired.
"""

from __future__ import annotations

from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure

LEASE = "LEASE"
LEASE_PURGE_AFTER_SECONDS = 24 * 3600


def session_pk(tenant: str, session_id: str) -> str:
    return f"T#{tenant}#S#{session_id}"


class DynamoSessionLeases:
    table: str
    ddb: Any

    def try_acquire(self, tenant: str, session_id: str, holder: str, *, now: float, until: float) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": LEASE}},
                UpdateExpression="SET holder = :holder, lease_until = :until, purge_at = :purge",
                ConditionExpression="attribute_not_exists(holder) OR lease_until < :now OR holder = :holder",
                ExpressionAttributeValues={
                    ":holder": {"S": holder},
                    ":until": {"N": repr(until)},
                    ":now": {"N": repr(now)},
                    # A lease whose holder died is reclaimed by the next turn; one nobody reclaims is removed by
                    # the table's TTL on purge_at, which no other item carries.
                    ":purge": {"N": str(int(until) + LEASE_PURGE_AFTER_SECONDS)},
                },
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def release(self, tenant: str, session_id: str, holder: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": session_pk(tenant, session_id)}, "sk": {"S": LEASE}},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": {"S": holder}},
            )
        except ClientError as error:
            if not is_condition_failure(error):
                raise
