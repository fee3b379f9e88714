"""HTTP API handler: the gateway's routes, one Powertools ``Router`` per resource (``ctxgate.api.routes``).

Every route but /healthz and /openapi.json needs the authorizer's identity, and every route checks the body size,
before anything else (middlewares); domain errors become OpenAI-style 4xx bodies (Anthropic-style on the Messages
routes), anything else a 500 that reveals nothing of it. Every response carries ``x-request-id``, the id in the logs.
"""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from ctxgate.api.authentication import require_caller
from ctxgate.api.limits import limit_body_size
from ctxgate.api.responses import bind_request_id, client_error, server_error, with_request_id
from ctxgate.api.routes import chat, conversations, messages, models, openapi, responses, runs, sessions, usage
from ctxgate.errors import CtxgateError, NotFound

logger = Logger()
app = APIGatewayHttpResolver()
# Outermost: the Messages routes answer even the inner middlewares' refusals in Anthropic's error shape.
app.use(middlewares=[messages.answer_in_anthropic_shape, require_caller, limit_body_size])
for resource in (chat, responses, conversations, messages, sessions, runs, models, usage, openapi):
    app.include_router(resource.router)
app.exception_handler(CtxgateError)(client_error)
app.exception_handler(Exception)(server_error)


@app.not_found
def unknown_route(_: Exception) -> Response:
    event = app.current_event
    error = NotFound(f"No route for {event.http_method} {event.path}.", code="unknown_route")
    return client_error(error)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request_id = bind_request_id(event, context.aws_request_id)
    try:
        return with_request_id(app.resolve(event, context), request_id)
    finally:
        metrics = sys.modules.get("ctxgate.adapters.metrics")  # loaded only once a request recorded a metric
        if metrics is not None:
            metrics.flush()
