"""Agent task: budget checks and the ends of a run that the state machine records.

Input ``{"tenant", "run_id", "action": "check" | "stopped" | "failed", "error"?}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

if TYPE_CHECKING:
    from ctxgate.agent.models import BudgetCheck

logger = Logger()


def budget_state(check: BudgetCheck, run_id: str) -> dict[str, Any]:
    """What the CheckBudget state reads; a needed compaction goes to ``compact_context`` as a one-record batch."""
    from ctxgate.adapters.sqs_records import handoff_batch

    job = check.compaction
    records = [] if job is None else handoff_batch(job.model_dump_json(), message_id=f"{run_id}-{job.evicted_through}")
    return {"over_budget": check.over_budget, "needs_compaction": bool(records), "records": records}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.bootstrap import agent_service

    agent, tenant, run_id = agent_service(), event["tenant"], event["run_id"]
    action = event["action"]
    if action == "check":
        return budget_state(agent.check_budget(tenant, run_id), run_id)
    if action == "stopped":
        agent.stopped_for_budget(tenant, run_id)
    elif action == "failed":
        agent.failed(tenant, run_id, event.get("error") or {})
    else:
        raise ValueError(f"unknown action {action!r}")
    return {"status": action}
