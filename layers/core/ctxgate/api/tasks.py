"""The agent loop's Lambda tasks over the chat domain: validated input in, a JSON-ready result out.

``functions/assemble_context`` plans a run's session's next context; ``functions/cache_lookup`` consults the
response cache for it. Both load the run first and take its tenant, session and model from the record: the run is
keyed by tenant, so an event naming another tenant than the run's finds no run (``NotFound``) and touches nothing.
Errors raise, so Step Functions' Retry and Catch see them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxgate.cache.keys import parse_cache_control
from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams, Message

if TYPE_CHECKING:
    from ctxgate.agent.models import Run


class AssembleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    message: str = ""


def _run(tenant: str, run_id: str) -> Run:
    """The run an internal task works on; the tenant it acts for is the record's, never the event's alone."""
    from ctxgate.bootstrap import agent_service

    return agent_service().get(tenant, run_id)


def assemble(event: dict[str, Any]) -> dict[str, Any]:
    """The inspection view of the plan the run's session's next request (with ``message``) would use."""
    from ctxgate.bootstrap import session_service

    try:
        task = AssembleInput.model_validate(event)
    except ValidationError as error:
        raise InvalidRequest(f"Invalid assemble input: {error.errors()[0]['msg']}") from error
    run = _run(task.tenant, task.run_id)
    plan = session_service().inspect(run.tenant, run.session_id, task.message, run.model, must_exist=False)
    return {"session_id": run.session_id, **plan.inspection()}


class CacheLookupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str = Field(min_length=1)
    run_id: str = Field(min_length=1)
    messages: list[Message] | None = None
    message: str = ""
    params: GenerationParams = Field(default_factory=GenerationParams)
    cache_control: str | None = None
    opt_in: bool = False
    threshold: float | None = None


def lookup(event: dict[str, Any]) -> dict[str, Any]:
    """A cache lookup, in the run's tenant and for the run's model, of explicit ``messages`` or of the run's
    session's next request assembled as the chat path would."""
    from ctxgate.bootstrap import chat_service, session_service

    try:
        task = CacheLookupInput.model_validate(event)
    except ValidationError as error:
        raise InvalidRequest(f"Invalid cache lookup input: {error.errors()[0]['msg']}") from error
    cache = chat_service().cache
    if cache is None:
        raise InvalidRequest("The response cache is not configured.")
    run = _run(task.tenant, task.run_id)
    chat_service().router.resolve(run.model)
    if task.messages is not None:
        messages = task.messages
    else:
        plan = session_service().inspect(run.tenant, run.session_id, task.message, run.model, must_exist=False)
        messages = plan.messages
    result = cache.lookup(
        run.tenant,
        run.model,
        messages,
        task.params,
        control=parse_cache_control(task.cache_control),
        opt_in=task.opt_in,
        threshold=task.threshold,
        allow_extended=False,  # no caller key travels with the task, so nothing allows the opt-in or a long max-age
    )
    response = result.response
    return {
        "status": result.status,
        "similarity": result.similarity,
        "reason": result.reason,
        "completion": response.completion.model_dump(exclude_none=True) if response else None,
        "usage": response.usage.model_dump() if response else None,
    }
