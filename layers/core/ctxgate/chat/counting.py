"""Counting a request's input tokens without serving it (Anthropic's ``count_tokens``).

Counts use the gateway's one token counter (:mod:`ctxgate.tokens`, ``cl100k_base``): the unit of every budget and
quota in ctxgate, so the number is what the gateway will reserve and plan with, not the upstream model's own
tokenizer's count (which differs by model; the provider's usage reports that one after a call).

On a session the count is that of the context the session's next request would send: the system prompt, pins,
summaries, recalled and recent turns that fit the session's budget, and the new messages. That is what the model
is paid for; the new messages alone would undercount every stateful turn but the first. A session that does not
exist yet (or belongs to another tenant: sessions are looked up by tenant) is planned as a new one.
"""

from __future__ import annotations

import json
from typing import Any

from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.chat.service import ChatService, pin_content
from ctxgate.context.engine import new_pin, validate_budget
from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams, Message
from ctxgate.retry import call_with_retry
from ctxgate.sessions.models import validate_session_id
from ctxgate.tokens import count_messages, count_text


def count_tools(tools: list[dict[str, Any]] | None) -> int:
    """Tokens of the tool definitions, as their compact JSON."""
    return sum(count_text(json.dumps(tool, separators=(",", ":"))) for tool in tools or ())


def count_input_tokens(
    service: ChatService,
    caller: Caller,
    *,
    model: str,
    messages: list[Message],
    tools: list[dict[str, Any]] | None = None,
    pins: list[str] | None = None,
    session_id: str | None = None,
    budget_tokens: int | None = None,
) -> int:
    """The input tokens of ``messages`` (and ``tools``) for ``model``; with ``session_id``, of the session's planned
    context for them. The key's limits apply as to a turn: a model the key may not use is a 403, an unknown model
    a 404, a budget above the key's ceiling a 400, and a key whose quota windows are full a 429 before planning
    (planning may summarise, which is a model call). Nothing is stored; no quota is consumed."""
    if budget_tokens is not None:
        validate_budget(budget_tokens)
    service.spend.admit(caller, model, max_output_tokens=None, output_limit=None, budget_tokens=budget_tokens)
    config = service.router.resolve(model)
    tool_tokens = count_tools(tools)
    if session_id is None:
        return count_messages(messages) + tool_tokens
    validate_session_id(session_id)
    systems = [m for m in messages if m.role == "system"]
    new = [m for m in messages if m.role != "system"]
    if len(systems) > 1:
        raise InvalidRequest("A stateful request may carry at most one system message.", param="messages")
    service.spend.check_room(caller)
    now = service.clock()
    new_pins = [new_pin(pin_content(content), now) for content in pins or ()]
    request = ChatRequest(model=config.name, messages=messages, params=GenerationParams(), budget_tokens=budget_tokens)
    planned = call_with_retry(
        lambda: service.plan(
            caller.tenant, session_id, request, new, system=systems[0] if systems else None, pins=new_pins
        ),
        service.conflict_policy,
        sleep=service.sleep,
    )
    return planned.plan.input_tokens + tool_tokens
