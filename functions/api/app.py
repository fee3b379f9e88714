"""HTTP API handler: the gateway's routes, one Powertools ``Router`` per resource (``ctxgate.api.routes``).

Every route checks the body size first (a middleware); domain errors become OpenAI-style 4xx bodies, anything
else a 500 that reveals nothing of it.
"""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext
from ctxgate.api.limits import limit_body_size
from ctxgate.api.responses import client_error, json_response, server_error
from ctxgate.api.routes import chat, models, runs, sessions, usage
from ctxgate.errors import CtxgateError, NotFound

logger = Logger()
app = APIGatewayHttpResolver()
app.use(middlewares=[limit_body_size])
for resource in (chat, sessions, runs, models, usage):
    app.include_router(resource.router)
app.exception_handler(CtxgateError)(client_error)
app.exception_handler(Exception)(server_error)


@app.not_found
def unknown_route(_: Exception) -> Response:
    event = app.current_event
    error = NotFound(f"No route for {event.http_method} {event.path}.", code="unknown_route")
    return json_response(404, error.to_body())


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        metrics = sys.modules.get("ctxgate.adapters.metrics")  # loaded only once a request recorded a metric
        if metrics is not None:
            metrics.flush()
