"""The agent loop's Lambda tasks over the chat domain: validated input in, a JSON-ready result out.

``functions/assemble_context`` plans a session's next context; ``functions/cache_lookup`` consults the response
cache. Errors raise, so Step Functions' Retry and Catch see them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxgate.cache.keys import parse_cache_control
from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams, Message
from ctxgate.settings import get_settings


class AssembleInput(BaseModel):
    tenant: str | None = None
    session_id: str = Field(min_length=1)
    message: str = ""
    model: str | None = None


def assemble(event: dict[str, Any]) -> dict[str, Any]:
    """The inspection view of the plan a session's next request (with ``message``) would use."""
    from ctxgate.bootstrap import session_service

    try:
        task = AssembleInput.model_validate(event)
    except ValidationError as error:
        raise InvalidRequest(f"Invalid assemble input: {error.errors()[0]['msg']}") from error
    tenant = task.tenant or get_settings().default_tenant
    plan = session_service().inspect(tenant, task.session_id, task.message, task.model, must_exist=False)
    return {"session_id": task.session_id, **plan.inspection()}


class CacheLookupInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = None
    model: str = Field(min_length=1)
    messages: list[Message] | None = None
    session_id: str | None = None
    message: str = ""
    params: GenerationParams = Field(default_factory=GenerationParams)
    cache_control: str | None = None
    opt_in: bool = False
    threshold: float | None = None


def lookup(event: dict[str, Any]) -> dict[str, Any]:
    """A cache lookup for explicit ``messages``, or for a session's next request assembled as the chat path would."""
    from ctxgate.bootstrap import chat_service, session_service

    try:
        task = CacheLookupInput.model_validate(event)
    except ValidationError as error:
        raise InvalidRequest(f"Invalid cache lookup input: {error.errors()[0]['msg']}") from error
    cache = chat_service().cache
    if cache is None:
        raise InvalidRequest("The response cache is not configured.")
    chat_service().router.resolve(task.model)
    tenant = task.tenant or get_settings().default_tenant
    if task.messages is not None:
        messages = task.messages
    elif task.session_id is not None:
        plan = session_service().inspect(tenant, task.session_id, task.message, task.model, must_exist=False)
        messages = plan.messages
    else:
        raise InvalidRequest("Give either messages or a session_id.")
    result = cache.lookup(
        tenant,
        task.model,
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
