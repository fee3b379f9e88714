"""HTTP API handler: OpenAI-compatible chat completions with server-side sessions.

Routing and rendering only; every decision is made in :mod:`ctxgate.api.gateway` and the domain below it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from ctxgate.api.http import HttpResult
from ctxgate.errors import CtxgateError, NotFound

if TYPE_CHECKING:
    from ctxgate.api.gateway import Gateway

logger = Logger()
app = APIGatewayHttpResolver()


def get_gateway() -> Gateway:
    """The domain is imported on first use: a health check or a model listing never pays for it."""
    from ctxgate.api.gateway import get_gateway

    return get_gateway()


def render(result: HttpResult) -> Response:
    return Response(result.status, result.content_type, result.text(), headers=result.headers)


def tenant() -> str:
    from ctxgate.api.gateway import resolve_tenant

    return resolve_tenant(app.current_event.raw_event)


@app.post("/v1/chat/completions")
def chat_completions() -> Response:
    event = app.current_event
    return render(get_gateway().chat_completions(event.decoded_body or "", event.headers, tenant()))


@app.get("/v1/sessions/<session_id>")
def get_session(session_id: str) -> Response:
    query = app.current_event.query_string_parameters or {}
    return render(get_gateway().get_session(session_id, query, tenant()))


@app.delete("/v1/sessions/<session_id>")
def delete_session(session_id: str) -> Response:
    return render(get_gateway().delete_session(session_id, tenant()))


@app.get("/v1/sessions/<session_id>/context")
def get_context(session_id: str) -> Response:
    query = app.current_event.query_string_parameters or {}
    return render(get_gateway().get_context(session_id, query, tenant()))


@app.post("/v1/sessions/<session_id>/pins")
def add_pin(session_id: str) -> Response:
    return render(get_gateway().add_pin(session_id, app.current_event.decoded_body or "", tenant()))


@app.get("/v1/sessions/<session_id>/pins")
def list_pins(session_id: str) -> Response:
    return render(get_gateway().list_pins(session_id, tenant()))


@app.delete("/v1/sessions/<session_id>/pins/<pin_id>")
def delete_pin(session_id: str, pin_id: str) -> Response:
    return render(get_gateway().delete_pin(session_id, pin_id, tenant()))


@app.post("/v1/runs")
def create_run() -> Response:
    return render(get_gateway().create_run(app.current_event.decoded_body or "", tenant()))


@app.get("/v1/runs/<run_id>")
def get_run(run_id: str) -> Response:
    return render(get_gateway().get_run(run_id, tenant()))


@app.post("/v1/runs/<run_id>/cancel")
def cancel_run(run_id: str) -> Response:
    return render(get_gateway().cancel_run(run_id, tenant()))


@app.get("/v1/models")
def models() -> Response:
    return render(get_gateway().models())


@app.get("/healthz")
def healthz() -> Response:
    return render(HttpResult(200, {"status": "ok"}))


@app.exception_handler(CtxgateError)
def client_error(error: CtxgateError) -> Response:
    logger.info("request failed", extra={"status": error.status, "code": error.code})
    return render(HttpResult(error.status, error.to_body()))


@app.exception_handler(Exception)
def server_error(error: Exception) -> Response:
    logger.exception("unhandled error")
    body = {
        "error": {
            "message": "The gateway failed to serve the request.",
            "type": "server_error",
            "code": "internal_error",
        }
    }
    return render(HttpResult(500, body))


@app.not_found
def not_found(_: Exception) -> Response:
    error = NotFound(f"No route for {app.current_event.http_method} {app.current_event.path}.", code="unknown_route")
    return render(HttpResult(404, error.to_body()))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        metrics = sys.modules.get("ctxgate.adapters.metrics")  # loaded only once a request recorded a metric
        if metrics is not None:
            metrics.flush()
