"""Agent task: budget checks and the ends of a run that the state machine records.

Input ``{"tenant", "run_id", "action": "check" | "stopped" | "failed", "error"?}``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.api.gateway import get_agent

    agent, tenant, run_id = get_agent(), event["tenant"], event["run_id"]
    action = event["action"]
    if action == "check":
        return agent.check(tenant, run_id)
    if action == "stopped":
        agent.stopped_for_budget(tenant, run_id)
    elif action == "failed":
        agent.failed(tenant, run_id, event.get("error") or {})
    else:
        raise ValueError(f"unknown action {action!r}")
    return {"status": action}
