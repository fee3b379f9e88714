"""``POST /v1/chat/completions``: OpenAI Chat Completions, stateless or on a server-side session."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from ctxgate.api.identity import caller_of
from ctxgate.api.limits import request_deadline
from ctxgate.api.responses import json_response
from ctxgate.auth.models import Caller
from ctxgate.errors import InvalidRequest

if TYPE_CHECKING:
    from ctxgate.chat.models import CacheOptions, ChatOutcome

router = APIGatewayHttpRouter()

SESSION_HEADER = "X-Session-Id"
TURN_HEADER = "X-Ctxgate-Turn"
BUDGET_HEADER = "X-Ctxgate-Budget"
CONTEXT_TOKENS_HEADER = "X-Ctxgate-Context-Tokens"
CACHE_HEADER = "X-Ctxgate-Cache"
SIMILARITY_HEADER = "X-Ctxgate-Cache-Similarity"
OPT_IN_HEADER = "X-Ctxgate-Cache-Opt-In"
THRESHOLD_HEADER = "X-Ctxgate-Cache-Threshold"


@router.post("/v1/chat/completions")
def chat_completions() -> Response:
    """With ``Idempotency-Key``, a repeat gets the first response instead of a second model call and turn."""
    event = router.current_event
    return idempotent(
        route="POST /v1/chat/completions",
        tenant=caller_of(event.raw_event).tenant,
        key=event.headers.get(IDEMPOTENCY_HEADER),
        body=event.decoded_body or "",
        context=router.lambda_context,
        execute=complete_chat,
    )


def complete_chat() -> Response:
    from ctxgate.api.wire.chat_completions import completion_body, completion_stream, parse_chat_request
    from ctxgate.bootstrap import chat_service
    from ctxgate.chat.models import ChatRequest

    event = router.current_event
    caller = caller_of(event.raw_event)
    wire = parse_chat_request(event.decoded_body or "")
    request = ChatRequest(
        model=wire.model,
        messages=wire.chat_messages(),
        params=wire.params(),
        pins=wire.pinned(),
        budget_tokens=budget_tokens(),
        cache=cache_options(caller),
        deadline=request_deadline(router.lambda_context),
    )
    session_id = event.headers.get(SESSION_HEADER)
    if session_id is None:
        outcome = chat_service().stateless(caller, request)
    else:
        outcome = chat_service().stateful(caller, session_id, request)
    headers = outcome_headers(outcome)
    if wire.stream:
        include_usage = bool((wire.stream_options or {}).get("include_usage"))
        sse = completion_stream(outcome.completion, outcome.usage, wire.model, include_usage=include_usage)
        return Response(200, "text/event-stream", sse, headers={**headers, "Cache-Control": "no-cache"})
    return json_response(200, completion_body(outcome.completion, outcome.usage, wire.model), headers)


def outcome_headers(outcome: ChatOutcome) -> dict[str, str]:
    """What a served turn tells the client beside its body, whatever its wire format: the session and turn
    (stateful), the context's input tokens, the response cache's verdict and the key's rate-limit state."""
    from ctxgate.api.rate_limits import rate_limit_headers

    headers: dict[str, str] = {}
    if outcome.session_id is not None:
        headers = {SESSION_HEADER: outcome.session_id, TURN_HEADER: str(outcome.turn)}
        if outcome.plan is not None:
            headers[CONTEXT_TOKENS_HEADER] = str(outcome.plan.input_tokens)
    if outcome.cache is not None:
        headers[CACHE_HEADER] = outcome.cache.status
        if outcome.cache.similarity is not None:
            headers[SIMILARITY_HEADER] = f"{outcome.cache.similarity:.4f}"
    headers.update(rate_limit_headers(outcome.rate_limits))
    return headers


def budget_tokens() -> int | None:
    """The current request's ``X-Ctxgate-Budget``, or None; a value that is not an integer is a 400."""
    raw = router.current_event.headers.get(BUDGET_HEADER)
    return _int_header(raw, BUDGET_HEADER) if raw is not None else None


def cache_options(caller: Caller) -> CacheOptions:
    """``Cache-Control`` (no-cache, no-store, max-age), the opt-in for non-deterministic requests, and a stricter
    semantic threshold, from the current request's headers; the opt-in and a max-age above the default are
    honoured only if the caller's key allows them (``cache_opt_in``)."""
    from ctxgate.cache.keys import parse_cache_control
    from ctxgate.chat.models import CacheOptions

    event = router.current_event
    threshold = event.headers.get(THRESHOLD_HEADER)
    try:
        value = float(threshold) if threshold is not None else None
    except ValueError:
        raise InvalidRequest("X-Ctxgate-Cache-Threshold must be a number.", param=THRESHOLD_HEADER) from None
    opt_in = (event.headers.get(OPT_IN_HEADER) or "").strip().lower() in ("1", "true", "yes", "on")
    return CacheOptions(
        control=parse_cache_control(event.headers.get("Cache-Control")),
        opt_in=opt_in,
        threshold=value,
        allow_extended=caller.limits.cache_opt_in,
    )


def _int_header(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer.", param=name) from None
