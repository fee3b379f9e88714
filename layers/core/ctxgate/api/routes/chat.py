"""``POST /v1/chat/completions``: OpenAI Chat Completions, stateless or on a server-side session."""

from __future__ import annotations

from contextlib import nullcontext
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
    from ctxgate.api.wire.chat_completions import ChatCompletionRequest
    from ctxgate.chat.models import CacheOptions, ChatOutcome, ChatRequest
    from ctxgate.chat.streaming import ChatStreamHead

router = APIGatewayHttpRouter()

SESSION_HEADER = "X-Session-Id"
TURN_HEADER = "X-Ctxgate-Turn"
BUDGET_HEADER = "X-Ctxgate-Budget"
CONTEXT_TOKENS_HEADER = "X-Ctxgate-Context-Tokens"
CACHE_HEADER = "X-Ctxgate-Cache"
SIMILARITY_HEADER = "X-Ctxgate-Cache-Similarity"
OPT_IN_HEADER = "X-Ctxgate-Cache-Opt-In"
THRESHOLD_HEADER = "X-Ctxgate-Cache-Threshold"
VARYING_HEADERS = (SESSION_HEADER, BUDGET_HEADER, "Cache-Control", OPT_IN_HEADER, THRESHOLD_HEADER)
"""The headers that change what a request does: an Idempotency-Key stands for the body and these."""


@router.post("/v1/chat/completions")
def chat_completions() -> Response:
    """With ``Idempotency-Key``, a repeat gets the first response instead of a second model call and turn (a
    streamed response is then sent whole, even by a streaming front: it is stored before it can be replayed)."""
    from ctxgate.api.streaming import buffered

    event = router.current_event
    key = event.headers.get(IDEMPOTENCY_HEADER)
    check_ctxgate_headers(caller_of(event.raw_event))
    with buffered() if key is not None else nullcontext():
        return idempotent(
            route="POST /v1/chat/completions",
            tenant=caller_of(event.raw_event).tenant,
            key=key,
            body=event.decoded_body or "",
            headers={name: event.headers.get(name) for name in VARYING_HEADERS},
            context=router.lambda_context,
            execute=complete_chat,
        )


def complete_chat() -> Response:
    from ctxgate.api.wire.chat_completions import completion_body, parse_chat_request
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
    if wire.stream:
        return stream_chat(caller, session_id, request, wire)
    if session_id is None:
        outcome = chat_service().stateless(caller, request)
    else:
        outcome = chat_service().stateful(caller, session_id, request)
    body = completion_body(outcome.completion, outcome.usage, wire.model)
    return json_response(200, body, turn_headers(outcome))


def stream_chat(caller: Caller, session_id: str | None, request: ChatRequest, wire: ChatCompletionRequest) -> Response:
    """``stream: true``: chunks as the model produces them (:mod:`ctxgate.api.streaming` says who receives them).
    Opening the stream raises every refusal before the first byte, so errors keep their JSON status responses."""
    from ctxgate.api.streaming import event_stream_response
    from ctxgate.api.wire.chat_completions import completion_chunks
    from ctxgate.bootstrap import chat_service

    stream = chat_service().open_stream(caller, session_id, request)
    chunks = completion_chunks(
        stream,
        wire.model,
        include_usage=bool((wire.stream_options or {}).get("include_usage")),
        final_usage=lambda: stream.outcome.usage if stream.outcome is not None else None,
    )
    return event_stream_response(stream.closing_after(chunks), turn_headers(stream.head))


def turn_headers(turn: ChatOutcome | ChatStreamHead) -> dict[str, str]:
    """The session, turn, context, cache and rate-limit headers of a turn (its outcome, or a stream's head)."""
    from ctxgate.api.rate_limits import rate_limit_headers

    headers: dict[str, str] = {}
    if turn.session_id is not None:
        headers = {SESSION_HEADER: turn.session_id, TURN_HEADER: str(turn.turn)}
        if turn.plan is not None:
            headers[CONTEXT_TOKENS_HEADER] = str(turn.plan.input_tokens)
    if turn.cache is not None:
        headers[CACHE_HEADER] = turn.cache.status
        if turn.cache.similarity is not None:
            headers[SIMILARITY_HEADER] = f"{turn.cache.similarity:.4f}"
    headers.update(rate_limit_headers(turn.rate_limits))
    return headers


def budget_tokens() -> int | None:
    """The current request's ``X-Ctxgate-Budget``, or None; a value that is not an integer in the gateway's range
    is a 400 (the key's own ceiling is checked with its other limits)."""
    from ctxgate.context.engine import validate_budget

    raw = router.current_event.headers.get(BUDGET_HEADER)
    return validate_budget(_int_header(raw, BUDGET_HEADER)) if raw is not None else None


def check_ctxgate_headers(caller: Caller) -> None:
    """Refuse bad ctxgate headers before the Idempotency-Key lookup: a replay keyed by the body alone would
    otherwise answer 200 to a request whose headers are invalid."""
    from ctxgate.context.engine import validate_budget

    budget = router.current_event.headers.get(BUDGET_HEADER)
    if budget is not None:
        validate_budget(_int_header(budget, BUDGET_HEADER))
    cache_options(caller)


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
    if value is not None and not 0 < value <= 1:  # checked here too: a request the cache never sees is still bad
        raise InvalidRequest("X-Ctxgate-Cache-Threshold is a cosine similarity in (0, 1].", param=THRESHOLD_HEADER)
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
