"""DynamoDB store of agent runs and their steps (the runs table).

    pk = "T#{tenant}#R#{run_id}"  sk = "RUN"                            the run (JSON) + status, session_id, model
    pk = "T#{tenant}#R#{run_id}"  sk = "STEP#{n:04d}#MODEL"             a model call
    pk = "T#{tenant}#R#{run_id}"  sk = "STEP#{n:04d}#TOOL#{call id}"    a tool call requested by model step n

Status changes are conditional on the status that was read, so a cancel is never overwritten by a late step.
The state machine reads ``session_id`` and ``model`` straight from the RUN item. Every item expires (DynamoDB
TTL on ``expires_at``) ``retention_seconds`` after it was written. A queued or running RUN item is in the sparse
``active`` index (``active_shard``, ``deadline_at``), which the sweeper reads to fail runs stuck past their deadline.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from ctxgate.adapters.dynamodb_common import is_condition_failure, query_all, query_pages
from ctxgate.agent.models import TERMINAL, Run, Step
from ctxgate.agent.ports import RunStatusConflict
from ctxgate.aws import client


def run_pk(tenant: str, run_id: str) -> str:
    return f"T#{tenant}#R#{run_id}"


def step_sk(step: Step, requested_by: int) -> str:
    if step.kind == "model":
        return f"STEP#{step.number:04d}#MODEL"
    return f"STEP#{requested_by:04d}#TOOL#{step.tool_call_id}"


ACTIVE_INDEX = "active"
ACTIVE_SHARDS = 4
DEFAULT_RETENTION_SECONDS = 30 * 24 * 3600


class DynamoRunStore:
    def __init__(
        self,
        table: str,
        dynamodb: Any = None,
        *,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._ddb = dynamodb
        self.retention_seconds = retention_seconds
        self.clock = clock

    def _expires_at(self) -> dict[str, str]:
        return {"N": str(int(self.clock()) + self.retention_seconds)}

    @property
    def ddb(self) -> Any:
        return self._ddb or client("dynamodb")

    def _item(self, run: Run) -> dict[str, Any]:
        item: dict[str, Any] = {
            "pk": {"S": run_pk(run.tenant, run.id)},
            "sk": {"S": "RUN"},
            "status": {"S": run.status},
            "session_id": {"S": run.session_id},
            "model": {"S": run.model},
            "run": {"S": run.model_dump_json()},
            "expires_at": {"N": str(int(run.created_at) + self.retention_seconds)},
        }
        if run.status not in TERMINAL and run.deadline_at is not None:
            item["active_shard"] = {"S": f"ACTIVE#{zlib.crc32(run.id.encode()) % ACTIVE_SHARDS}"}
            item["deadline_at"] = {"N": str(int(run.deadline_at))}
        return item

    def create(self, run: Run) -> None:
        self.ddb.put_item(TableName=self.table, Item=self._item(run), ConditionExpression="attribute_not_exists(pk)")

    def get(self, tenant: str, run_id: str) -> Run | None:
        item = self.ddb.get_item(
            TableName=self.table, Key={"pk": {"S": run_pk(tenant, run_id)}, "sk": {"S": "RUN"}}, ConsistentRead=True
        ).get("Item")
        return Run.model_validate_json(item["run"]["S"]) if item else None

    def save(self, run: Run, *, expected_status: set[str]) -> None:
        """Write ``run`` if its stored status is still one of ``expected_status``, else raise RunStatusConflict."""
        from botocore.exceptions import ClientError

        names = {"#s": "status"}
        values = {f":s{i}": {"S": s} for i, s in enumerate(sorted(expected_status))}
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=self._item(run),
                ConditionExpression=f"#s IN ({', '.join(values)})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if is_condition_failure(error):
                raise RunStatusConflict(f"run {run.id} is no longer {sorted(expected_status)}") from error
            raise

    def put_step(self, tenant: str, run_id: str, step: Step, *, requested_by: int = 0) -> bool:
        """Record a step once; False if it was already recorded (a retried task)."""
        from botocore.exceptions import ClientError

        item = {
            "pk": {"S": run_pk(tenant, run_id)},
            "sk": {"S": step_sk(step, requested_by)},
            "step": {"S": step.model_dump_json()},
            "expires_at": self._expires_at(),
        }
        try:
            self.ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def model_step(self, tenant: str, run_id: str, number: int) -> Step | None:
        key = {"pk": {"S": run_pk(tenant, run_id)}, "sk": {"S": f"STEP#{number:04d}#MODEL"}}
        item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return Step.model_validate_json(item["step"]["S"]) if item else None

    def finish_model_step(self, tenant: str, run_id: str, step: Step) -> None:
        item = {
            "pk": {"S": run_pk(tenant, run_id)},
            "sk": {"S": step_sk(step, 0)},
            "step": {"S": step.model_dump_json()},
            "expires_at": self._expires_at(),
        }
        self.ddb.put_item(TableName=self.table, Item=item)

    def stuck(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for shard in range(ACTIVE_SHARDS):
            items = query_pages(
                self.ddb,
                limit=limit - len(found),
                TableName=self.table,
                IndexName=ACTIVE_INDEX,
                KeyConditionExpression="active_shard = :shard AND deadline_at < :now",
                ExpressionAttributeValues={":shard": {"S": f"ACTIVE#{shard}"}, ":now": {"N": str(int(now))}},
            )
            for item in items:
                tenant, _, run_id = item["pk"]["S"][2:].partition("#R#")
                found.append((tenant, run_id))
            if len(found) >= limit:
                break
        return found

    def tool_step(self, tenant: str, run_id: str, requested_by: int, tool_call_id: str) -> Step | None:
        key = {"pk": {"S": run_pk(tenant, run_id)}, "sk": {"S": f"STEP#{requested_by:04d}#TOOL#{tool_call_id}"}}
        item = self.ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return Step.model_validate_json(item["step"]["S"]) if item else None

    def steps(self, tenant: str, run_id: str) -> list[Step]:
        items = query_all(
            self.ddb,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :steps)",
            ExpressionAttributeValues={":pk": {"S": run_pk(tenant, run_id)}, ":steps": {"S": "STEP#"}},
            ConsistentRead=True,
        )
        return [Step.model_validate_json(i["step"]["S"]) for i in items]
