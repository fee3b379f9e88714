"""Agent task: one model call of a run (input or tool results in, reply and tool calls out, all via the session).

Input ``{"tenant", "run_id"}``; output ``{"finished", "over_budget", "step", "tool_calls": [pointers]}``.
Failures raise, so the state machine's Retry and Catch see them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.bootstrap import agent_service

    return agent_service().model_step(event["tenant"], event["run_id"])
