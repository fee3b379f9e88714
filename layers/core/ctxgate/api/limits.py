"""Limits every route enforces before any work is done."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from ctxgate.api.responses import client_error
from ctxgate.errors import PayloadTooLarge
from ctxgate.settings import get_settings


def limit_body_size(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """Refuse a body over ``CTXGATE_MAX_REQUEST_BYTES`` (413) on every route, before it is parsed."""
    limit = get_settings().max_request_bytes
    body = app.current_event.decoded_body or ""
    if len(body) > limit or len(body.encode()) > limit:
        return client_error(PayloadTooLarge(f"The request body exceeds {limit} bytes."))
    return next_middleware(app)
