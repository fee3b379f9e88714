"""Context assembly as a Lambda task (for the agent state machine): the plan a run's next request would use.

Input ``{"tenant", "run_id", "message"?}``; the run is loaded first (its tenant, session and model come from the
record; another tenant's run is not found). Output the inspection view of the plan. Errors raise,
so Step Functions' Retry and Catch see them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.api.tasks import assemble  # the domain loads on first use, not at cold start

    return assemble(event)
