"""``POST /v1/messages`` and ``POST /v1/messages/count_tokens``: Anthropic's Messages API over any configured
provider, stateless or on a server-side session (``X-Session-Id``), for the official ``anthropic`` SDK.

A turn is the same :class:`~ctxgate.chat.service.ChatService` turn as a chat completion (key limits and quotas
before any model call, the session's lease and budgeted context, the response cache, the conditional append), only
read from and rendered to Anthropic's wire format (:mod:`ctxgate.api.wire.anthropic_messages`,
:mod:`ctxgate.api.wire.anthropic_rendering`). Every answer of these routes, errors included, is in Anthropic's
shape: :func:`answer_in_anthropic_shape` runs outermost for them.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from ctxgate.api.identity import caller_of
from ctxgate.api.responses import client_error, current_request_id, json_response, server_error
from ctxgate.errors import CtxgateError

if TYPE_CHECKING:
    from ctxgate.auth.models import Caller
    from ctxgate.chat.models import ChatRequest

router = APIGatewayHttpRouter()

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
ANTHROPIC_PATHS = frozenset({MESSAGES_PATH, COUNT_TOKENS_PATH})
REQUEST_ID_HEADER = "request-id"
"""Where Anthropic's API (and so its SDK, as ``request_id``) carries the request's id."""


@router.post(MESSAGES_PATH)
def create_message() -> Response:
    """With ``Idempotency-Key``, a repeat gets the first response instead of a second model call and turn.

    The body and headers are validated before the key is looked up: a malformed request is refused even when its
    key and body match an earlier one (the key's fingerprint is the body; a bad header must not be replayed into
    a 200)."""
    from ctxgate.api.limits import request_deadline
    from ctxgate.api.routes.chat import SESSION_HEADER, VARYING_HEADERS, budget_tokens, cache_options
    from ctxgate.api.streaming import buffered
    from ctxgate.api.wire.anthropic_messages import parse_messages_request
    from ctxgate.chat.models import ChatRequest
    from ctxgate.sessions.models import validate_session_id

    event = router.current_event
    caller = caller_of(event.raw_event)
    wire = parse_messages_request(event.decoded_body or "")
    session_id = event.headers.get(SESSION_HEADER)
    if session_id is not None:
        validate_session_id(session_id)
    request = ChatRequest(
        model=wire.model,
        messages=wire.chat_messages(),
        params=wire.params(),
        pins=wire.pinned(),
        budget_tokens=budget_tokens(),
        cache=cache_options(caller),
        cache_points=wire.cache_points() if session_id is None else [],
        deadline=request_deadline(router.lambda_context),
    )
    key = event.headers.get(IDEMPOTENCY_HEADER)
    with buffered() if key is not None else nullcontext():  # a stored response must be whole to be replayed
        return idempotent(
            route=f"POST {MESSAGES_PATH}",
            tenant=caller.tenant,
            key=key,
            body=event.decoded_body or "",
            headers={name: event.headers.get(name) for name in VARYING_HEADERS},
            context=router.lambda_context,
            execute=lambda: _serve(caller, session_id, request, stream=wire.stream),
        )


def _serve(caller: Caller, session_id: str | None, request: ChatRequest, *, stream: bool) -> Response:
    from ctxgate.api.routes.chat import turn_headers
    from ctxgate.api.wire.anthropic_rendering import message_body
    from ctxgate.bootstrap import chat_service

    if stream:
        return _stream_message(caller, session_id, request)
    if session_id is None:
        outcome = chat_service().stateless(caller, request)
    else:
        outcome = chat_service().stateful(caller, session_id, request)
    return json_response(200, message_body(outcome.completion, outcome.usage, request.model), turn_headers(outcome))


def _stream_message(caller: Caller, session_id: str | None, request: ChatRequest) -> Response:
    """``stream: true``: Anthropic's events as the model produces them (:mod:`ctxgate.api.streaming` says who
    receives them). Opening the stream raises every refusal before the first byte, so errors keep their JSON
    responses; a failure after it ends the stream with an ``error`` event and stores nothing."""
    from ctxgate.api.routes.chat import turn_headers
    from ctxgate.api.streaming import event_stream_response
    from ctxgate.api.wire.anthropic_rendering import message_event_stream
    from ctxgate.bootstrap import chat_service
    from ctxgate.messages import Usage
    from ctxgate.tokens import count_messages

    stream = chat_service().open_stream(caller, session_id, request)
    plan = stream.head.plan
    prompt = Usage(prompt_tokens=plan.input_tokens if plan is not None else count_messages(request.messages))
    events = message_event_stream(
        stream,
        request.model,
        input_usage=prompt,
        final_usage=lambda: stream.outcome.usage if stream.outcome is not None else None,
    )
    return event_stream_response(stream.closing_after(events), turn_headers(stream.head))


@router.post(COUNT_TOKENS_PATH)
def count_tokens() -> Response:
    """``{"input_tokens": N}``: with ``X-Session-Id``, of the context the session's next request would send."""
    from ctxgate.api.routes.chat import SESSION_HEADER, budget_tokens
    from ctxgate.api.wire.anthropic_messages import parse_count_tokens_request
    from ctxgate.bootstrap import chat_service
    from ctxgate.chat.counting import count_input_tokens

    event = router.current_event
    wire = parse_count_tokens_request(event.decoded_body or "")
    tokens = count_input_tokens(
        chat_service(),
        caller_of(event.raw_event),
        model=wire.model,
        messages=wire.chat_messages(),
        tools=wire.function_tools(),
        pins=wire.pinned(),
        session_id=event.headers.get(SESSION_HEADER),
        budget_tokens=budget_tokens(),
    )
    return json_response(200, {"input_tokens": tokens})


def answer_in_anthropic_shape(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """For the Messages routes only (every other route passes through untouched): any failure, from a route, the
    idempotency layer or an inner middleware (authentication, body size), is answered in Anthropic's error shape
    with the status and headers ctxgate's own error handling gives it; every answer carries ``request-id``."""
    if app.current_event.path not in ANTHROPIC_PATHS:
        return next_middleware(app)
    from ctxgate.api.wire.anthropic_rendering import error_body

    try:
        response = next_middleware(app)
    except CtxgateError as error:
        response = client_error(error)
    except Exception as error:  # the global handler would answer in OpenAI's shape; same logging, same silence
        response = server_error(error)
    if response.status_code >= 400 and response.content_type == "application/json":
        body = json.loads(response.body or "{}")
        response.body = json.dumps(error_body(response.status_code, body), separators=(",", ":"))
    request_id = current_request_id()
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
