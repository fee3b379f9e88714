"""Agent task: run one tool call of a run and record its result.

Input ``{"tenant", "run_id", "tool_call_id", "failure"?}``. A transient failure raises ``TransientError`` (the
state machine retries it); ``failure`` is how the state machine records a tool that kept failing, as an error
result the model will see.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.bootstrap import agent_service

    agent_service().tool_step(event["tenant"], event["run_id"], event["tool_call_id"], event.get("failure"))
    return {"tool_call_id": event["tool_call_id"]}
