"""Context assembly as a Lambda task (for the agent state machine): the plan a session's next request would use.

Input ``{"tenant"?, "session_id", "message", "model"?}``; output the inspection view of the plan. Errors raise,
so Step Functions' Retry and Catch see them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from ctxgate.settings import get_settings
from pydantic import BaseModel, Field

logger = Logger()


class AssembleInput(BaseModel):
    tenant: str | None = None
    session_id: str = Field(min_length=1)
    message: str = ""
    model: str | None = None


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.api.gateway import get_gateway  # the domain loads on first use, not at cold start

    request = AssembleInput.model_validate(event)
    tenant = request.tenant or get_settings().default_tenant
    plan = get_gateway().service.inspect(tenant, request.session_id, request.message, request.model, must_exist=False)
    return {"session_id": request.session_id, **plan.inspection()}
