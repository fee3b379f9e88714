"""Limits every route enforces before any work is done."""

from __future__ import annotations

import time

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.typing import LambdaContext

from ctxgate.api.responses import client_error
from ctxgate.errors import InvalidRequest, PayloadTooLarge
from ctxgate.settings import get_settings


def limit_body_size(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    """Refuse a body over ``CTXGATE_MAX_REQUEST_BYTES`` (413) on every route, before it is parsed, and a body that
    is not UTF-8 text (400): API Gateway base64-encodes such a body, and decoding it as text would fail later."""
    limit = get_settings().max_request_bytes
    try:
        body = app.current_event.decoded_body or ""
    except UnicodeDecodeError:
        return client_error(InvalidRequest("The request body is not UTF-8 text.", code="invalid_body_encoding"))
    if len(body) > limit or len(body.encode()) > limit:
        return client_error(PayloadTooLarge(f"The request body exceeds {limit} bytes."))
    return next_middleware(app)


def request_deadline(context: LambdaContext | None, *, margin_seconds: float = 1.0) -> float | None:
    """The clock time by which this invocation must answer: its remaining time, less a margin to send it."""
    if context is None:
        return None
    return time.time() + context.get_remaining_time_in_millis() / 1000 - margin_seconds
