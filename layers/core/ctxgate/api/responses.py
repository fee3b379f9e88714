"""Rendering HTTP responses: JSON bodies, OpenAI-style error bodies, and the resolver's error handlers."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response

from ctxgate.errors import CtxgateError, RateLimited

logger = Logger(child=True)


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", json.dumps(body, separators=(",", ":")), headers=headers or {})


def client_error(error: CtxgateError) -> Response:
    """A domain error: its status and OpenAI-style ``{"error": {...}}`` body."""
    logger.info("request failed", extra={"status": error.status, "code": error.code})
    return json_response(error.status, error.to_body(), error_headers(error))


def error_headers(error: CtxgateError) -> dict[str, str]:
    """A 429 says when to retry (``Retry-After``) and, for a key's quota, its ``x-ratelimit-*`` state."""
    if not isinstance(error, RateLimited):
        return {}
    from ctxgate.api.rate_limits import rate_limit_headers
    from ctxgate.quotas.models import QuotaExceeded

    state = error.state if isinstance(error, QuotaExceeded) else None
    return {"Retry-After": str(error.retry_after), **rate_limit_headers(state)}


def server_error(error: Exception) -> Response:
    """Anything unexpected: logged in full, answered with a body that reveals nothing of it."""
    logger.exception("unhandled error")
    body = {
        "error": {
            "message": "The gateway failed to serve the request.",
            "type": "server_error",
            "code": "internal_error",
        }
    }
    return json_response(500, body)
