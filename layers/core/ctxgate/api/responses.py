"""Rendering HTTP responses: JSON bodies, OpenAI-style error bodies, the resolver's error handlers, and the
request id every response carries.

The request id is API Gateway's (``requestContext.requestId``), else the Lambda invocation's. The handler makes it
the Powertools Logger's correlation id, so every log line of the request carries it, and the client gets it as
``x-request-id`` and, on errors, as ``error.request_id``: one id joins a client's report to the logs that hold
what the client is never shown (upstream bodies, hosts, stack traces).
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response

from ctxgate.errors import CtxgateError, RateLimited

logger = Logger(child=True)

REQUEST_ID_HEADER = "x-request-id"


def current_request_id() -> str | None:
    """The id of the request being served (the logger's correlation id), or None outside a request."""
    return logger.get_correlation_id()


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(status, "application/json", json.dumps(body, separators=(",", ":")), headers=headers or {})


def client_error(error: CtxgateError) -> Response:
    """A domain error: its status and OpenAI-style ``{"error": {...}}`` body, with the request id."""
    logger.info("request failed", extra={"status": error.status, "code": error.code})
    return json_response(error.status, error.to_body(current_request_id()), error_headers(error))


def error_headers(error: CtxgateError) -> dict[str, str]:
    """A 429 says when to retry (``Retry-After``) and, for a key's quota, its ``x-ratelimit-*`` state; so does a
    409 for a session busy serving another turn, or a request still in flight under the same Idempotency-Key."""
    retry_after = getattr(error, "retry_after", None)
    if not isinstance(error, RateLimited):
        return {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else {}
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
    request_id = current_request_id()
    if request_id:
        body["error"]["request_id"] = request_id
    return json_response(500, body)


def bind_request_id(event: dict[str, Any], lambda_request_id: str) -> str:
    """Make the request's id (API Gateway's, else the Lambda invocation's) the logger's correlation id."""
    request_id = str((event.get("requestContext") or {}).get("requestId") or lambda_request_id)
    logger.set_correlation_id(request_id)
    return request_id


def with_request_id(response: dict[str, Any], request_id: str) -> dict[str, Any]:
    """Add ``x-request-id`` to a resolved API Gateway response, whatever produced it (route, error handler,
    middleware or the not-found handler)."""
    headers = response.setdefault("headers", {})
    headers[REQUEST_ID_HEADER] = request_id
    return response
