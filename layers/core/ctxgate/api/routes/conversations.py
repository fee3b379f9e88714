"""``/v1/conversations``: OpenAI's Conversations API. A conversation is a ctxgate session (same id), so the
``/v1/sessions/{id}`` routes (pins, context plan, budget) apply to it too."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from ctxgate.api.identity import tenant_of
from ctxgate.api.responses import json_response
from ctxgate.errors import InvalidRequest

router = APIGatewayHttpRouter()


def _tenant() -> str:
    return tenant_of(router.current_event.raw_event)


def _idempotent(route: str, execute) -> Response:  # noqa: ANN001
    event = router.current_event
    return idempotent(
        route=route,
        tenant=_tenant(),
        key=event.headers.get(IDEMPOTENCY_HEADER),
        body=event.decoded_body or "",
        context=router.lambda_context,
        execute=execute,
    )


def _items(raw: list[dict] | None) -> list:
    from ctxgate.api.wire.responses import input_messages

    messages, system = input_messages(raw or [], "items")
    if system:
        raise InvalidRequest("Conversation items are user, assistant and function items.", param="items")
    return messages


@router.post("/v1/conversations")
def create_conversation() -> Response:
    """With ``Idempotency-Key``, a repeat gets the first conversation instead of a second one."""

    def execute() -> Response:
        from ctxgate.api.wire.responses import ConversationCreate, conversation_body, parse_body
        from ctxgate.bootstrap import conversation_service

        body = parse_body(ConversationCreate, router.current_event.decoded_body or "")
        record = conversation_service().create(_tenant(), _items(body.items), body.metadata or {})
        return json_response(200, conversation_body(record))

    return _idempotent("POST /v1/conversations", execute)


@router.get("/v1/conversations/<conversation_id>")
def get_conversation(conversation_id: str) -> Response:
    from ctxgate.api.wire.responses import conversation_body
    from ctxgate.bootstrap import conversation_service

    record, _ = conversation_service().get(_tenant(), conversation_id)
    return json_response(200, conversation_body(record))


@router.post("/v1/conversations/<conversation_id>")
def update_conversation(conversation_id: str) -> Response:
    from ctxgate.api.wire.responses import ConversationUpdate, conversation_body, parse_body
    from ctxgate.bootstrap import conversation_service

    body = parse_body(ConversationUpdate, router.current_event.decoded_body or "")
    return json_response(
        200, conversation_body(conversation_service().update(_tenant(), conversation_id, body.metadata))
    )


@router.delete("/v1/conversations/<conversation_id>")
def delete_conversation(conversation_id: str) -> Response:
    from ctxgate.bootstrap import conversation_service

    conversation_service().delete(_tenant(), conversation_id)
    return json_response(200, {"id": conversation_id, "object": "conversation.deleted", "deleted": True})


@router.get("/v1/conversations/<conversation_id>/items")
def list_items(conversation_id: str) -> Response:
    from ctxgate.api.routes.responses import page_of
    from ctxgate.api.wire.responses import item_list_body
    from ctxgate.bootstrap import conversation_service

    items = conversation_service().items(_tenant(), conversation_id)
    page, has_more = page_of(items, router.current_event)
    return json_response(200, item_list_body(page, has_more))


@router.post("/v1/conversations/<conversation_id>/items")
def add_items(conversation_id: str) -> Response:
    """With ``Idempotency-Key``, a repeat gets the first answer instead of adding the items twice."""

    def execute() -> Response:
        from ctxgate.api.wire.responses import ItemsCreate, item_list_body, parse_body
        from ctxgate.bootstrap import conversation_service

        body = parse_body(ItemsCreate, router.current_event.decoded_body or "")
        added = conversation_service().add(_tenant(), conversation_id, _items(body.items))
        return json_response(200, item_list_body(added, False))

    return _idempotent(f"POST /v1/conversations/{conversation_id}/items", execute)


@router.get("/v1/conversations/<conversation_id>/items/<item_id>")
def get_item(conversation_id: str, item_id: str) -> Response:
    from ctxgate.api.wire.responses import item_body
    from ctxgate.bootstrap import conversation_service

    return json_response(200, item_body(conversation_service().item(_tenant(), conversation_id, item_id)))


@router.delete("/v1/conversations/<conversation_id>/items/<item_id>")
def delete_item(conversation_id: str, item_id: str) -> Response:
    from ctxgate.api.wire.responses import conversation_body
    from ctxgate.bootstrap import conversation_service

    record = conversation_service().delete_item(_tenant(), conversation_id, item_id)
    return json_response(200, conversation_body(record))
