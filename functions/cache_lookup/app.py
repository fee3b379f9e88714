"""Cache lookup as a Lambda task (for the agent state machine).

Input ``{"tenant", "run_id", "messages"?, "message"?, "params"?, "cache_control"?, "opt_in"?, "threshold"?}``:
the run is loaded first (its tenant, model and session come from the record; another tenant's run is not found),
then either explicit ``messages`` are looked up, or the run's session's next request (with ``message``) is
assembled first, exactly as the chat path would. Output ``{"status", "similarity", "reason", "completion", "usage"}``.
Errors raise, so Step Functions' Retry and Catch see them.
"""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.api.tasks import lookup  # the domain loads on first use, not at cold start

    try:
        return lookup(event)
    finally:
        metrics = sys.modules.get("ctxgate.adapters.metrics")
        if metrics is not None:
            metrics.flush()
