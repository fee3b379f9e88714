"""``/v1/sessions/{id}``: a session's history, its deletion, its pins, and the plan of its next context."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.identity import tenant_of
from ctxgate.api.responses import json_response
from ctxgate.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from ctxgate.sessions.models import Pin

router = APIGatewayHttpRouter()

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def _tenant() -> str:
    return tenant_of(router.current_event.raw_event)


@router.get("/v1/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    after = _int_query("after", 0, minimum=0)
    limit = _int_query("limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
    page = session_service().page(_tenant(), session_id, after=after, limit=limit)
    if page is None:
        raise NotFound(f"No session {session_id!r}.", code="session_not_found")
    meta = page.meta
    body = {
        "id": meta.session_id,
        "object": "session",
        "created_at": int(meta.created_at),
        "updated_at": int(meta.updated_at),
        "expires_at": meta.expires_at,
        "system_prompt": meta.system_prompt,
        "model": meta.model,
        "turn_count": meta.last_seq,
        "turns": [
            {"turn": t.seq, **t.message.wire(), "tokens": t.tokens, "created_at": int(t.created_at)}
            for t in page.turns.turns
        ],
        "has_more": page.turns.next_after is not None,
        "next_after": page.turns.next_after,
    }
    return json_response(200, body)


@router.delete("/v1/sessions/<session_id>")
def delete_session(session_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    if not session_service().delete(_tenant(), session_id):
        raise NotFound(f"No session {session_id!r}.", code="session_not_found")
    return json_response(200, {"id": session_id, "object": "session.deleted", "deleted": True})


@router.get("/v1/sessions/<session_id>/context")
def get_context(session_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    event = router.current_event
    model = event.get_query_string_value("model") or None
    plan = session_service().inspect(_tenant(), session_id, event.get_query_string_value("message", "") or "", model)
    return json_response(200, {"id": session_id, **plan.inspection()})


@router.post("/v1/sessions/<session_id>/pins")
def add_pin(session_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    try:
        payload = json.loads(router.current_event.decoded_body or "")
    except ValueError:
        raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("content"), str):
        raise InvalidRequest('A pin is {"content": "..."}.', param="content")
    pin = session_service().add_pin(_tenant(), session_id, payload["content"])
    return json_response(201, _pin_body(pin))


@router.get("/v1/sessions/<session_id>/pins")
def list_pins(session_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    pins = session_service().pins(_tenant(), session_id)
    return json_response(200, {"object": "list", "data": [_pin_body(p) for p in pins]})


@router.delete("/v1/sessions/<session_id>/pins/<pin_id>")
def delete_pin(session_id: str, pin_id: str) -> Response:
    from ctxgate.bootstrap import session_service

    if not session_service().delete_pin(_tenant(), session_id, pin_id):
        raise NotFound(f"No pin {pin_id!r} in session {session_id!r}.", code="pin_not_found")
    return json_response(200, {"id": pin_id, "object": "session.pin.deleted", "deleted": True})


def _pin_body(pin: Pin) -> dict[str, Any]:
    return {
        "id": pin.id,
        "object": "session.pin",
        "content": pin.content,
        "tokens": pin.tokens,
        "created_at": int(pin.created_at),
    }


def _int_query(name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = router.current_event.get_query_string_value(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Query parameter {name} must be an integer.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise InvalidRequest(f"Query parameter {name} must be between {minimum} and {maximum}.", param=name)
    return value
