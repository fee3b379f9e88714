"""``/v1/responses``: OpenAI's Responses API over ctxgate sessions (:mod:`ctxgate.responses`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from ctxgate.api.identity import caller_of, tenant_of
from ctxgate.api.responses import json_response
from ctxgate.errors import InvalidRequest

if TYPE_CHECKING:
    from ctxgate.auth.models import Caller
    from ctxgate.responses.models import ResponseRequest

router = APIGatewayHttpRouter()

MAX_PAGE = 100
DEFAULT_PAGE = 20


@router.post("/v1/responses")
def create_response() -> Response:
    """With ``Idempotency-Key``, a repeat gets the first response instead of a second model call and turn (a
    streamed response is then sent whole: it is stored before it can be replayed)."""
    from ctxgate.api.routes.chat import VARYING_HEADERS, check_ctxgate_headers
    from ctxgate.api.streaming import buffered

    event = router.current_event
    key = event.headers.get(IDEMPOTENCY_HEADER)
    check_ctxgate_headers(caller_of(event.raw_event))
    with buffered() if key is not None else nullcontext():
        return idempotent(
            route="POST /v1/responses",
            tenant=caller_of(event.raw_event).tenant,
            key=key,
            body=event.decoded_body or "",
            headers={name: event.headers.get(name) for name in VARYING_HEADERS},
            context=router.lambda_context,
            execute=serve_response,
        )


def serve_response() -> Response:
    from ctxgate.api.limits import request_deadline
    from ctxgate.api.routes.chat import BUDGET_HEADER, _int_header, cache_options, turn_headers
    from ctxgate.api.wire import responses as wire
    from ctxgate.bootstrap import responses_service
    from ctxgate.responses.models import ResponseRequest

    event = router.current_event
    caller = caller_of(event.raw_event)
    body = wire.parse_body(wire.ResponseCreate, event.decoded_body or "")
    messages, system = wire.input_messages(body.input)
    if not messages:
        raise InvalidRequest("input needs at least one user, assistant or function item.", param="input")
    instructions = "\n\n".join(t for t in [body.instructions or "", *system] if t) or None
    fmt = wire.output_format(body.text)
    request = ResponseRequest(
        model=body.model,
        input=messages,
        params=wire.generation_params(body, fmt),
        instructions=instructions,
        previous_response_id=body.previous_response_id,
        conversation=wire.conversation_id(body.conversation),
        store=body.store,
        truncation=body.truncation or "auto",
        output_format=fmt,
        metadata=body.metadata or {},
        settings=wire.echoed_settings(body),
        cache=cache_options(caller),
        deadline=request_deadline(router.lambda_context),
        budget_tokens=_int_header(budget, BUDGET_HEADER) if (budget := event.headers.get(BUDGET_HEADER)) else None,
    )
    if body.stream:
        return stream_response(caller, request)
    outcome = responses_service().create(caller, request)
    return json_response(200, wire.response_body(outcome.record), turn_headers(outcome.chat))


def stream_response(caller: Caller, request: ResponseRequest) -> Response:
    """``stream: true``: Responses events as the model produces them (:mod:`ctxgate.api.streaming` says who receives
    them). Opening the stream raises every refusal before the first byte, so errors keep their JSON responses."""
    from ctxgate.api.routes.chat import turn_headers
    from ctxgate.api.streaming import event_stream_response
    from ctxgate.api.wire.responses_stream import response_stream_events, sse_chunks
    from ctxgate.bootstrap import responses_service
    from ctxgate.chat.streaming import ChatStream

    opened = responses_service().open_stream(caller, request)
    stream = opened.turn
    assert isinstance(stream, ChatStream)

    def chunks() -> Iterator[bytes]:
        try:
            yield from stream.closing_after(sse_chunks(response_stream_events(opened, stream)))
        finally:
            opened.end()

    return event_stream_response(chunks(), turn_headers(stream.head))


@router.get("/v1/responses/<response_id>")
def get_response(response_id: str) -> Response:
    from ctxgate.api.wire.responses import response_body
    from ctxgate.bootstrap import responses_service

    return json_response(200, response_body(responses_service().get(_tenant(), response_id)))


@router.delete("/v1/responses/<response_id>")
def delete_response(response_id: str) -> Response:
    from ctxgate.bootstrap import responses_service

    responses_service().delete(_tenant(), response_id)
    return json_response(200, {"id": response_id, "object": "response.deleted", "deleted": True})


@router.get("/v1/responses/<response_id>/input_items")
def list_input_items(response_id: str) -> Response:
    from ctxgate.api.wire.responses import item_list_body
    from ctxgate.bootstrap import responses_service

    items = responses_service().input_items(_tenant(), response_id)
    page, has_more = page_of(items, router.current_event)
    return json_response(200, item_list_body(page, has_more))


def _tenant() -> str:
    return tenant_of(router.current_event.raw_event)


def page_of(items: list, event) -> tuple[list, bool]:  # noqa: ANN001
    """``order`` (asc, or desc: the default), ``after`` (an item id) and ``limit`` (1-100, default 20)."""
    order = event.get_query_string_value("order")
    order = "desc" if order is None else order  # present but empty is invalid, as any other value
    if order not in ("asc", "desc"):
        raise InvalidRequest("order is asc or desc.", param="order")
    raw = event.get_query_string_value("limit")
    raw = str(DEFAULT_PAGE) if raw is None else raw
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidRequest(f"limit is an integer from 1 to {MAX_PAGE}.", param="limit")
    ordered = list(reversed(items)) if order == "desc" else list(items)
    after = event.get_query_string_value("after")
    if after:
        position = next((i for i, item in enumerate(ordered) if item.id == after), None)
        if position is None:
            raise InvalidRequest(f"No item {after!r} in this list.", param="after")
        ordered = ordered[position + 1 :]
    return ordered[: int(raw)], len(ordered) > int(raw)
