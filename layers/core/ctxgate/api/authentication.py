"""Every route but the public ones serves only an authenticated caller.

The HTTP API's authorizer already refuses requests without a valid key; this middleware is the second lock, so a
route that were ever deployed without the authorizer (or an event from anything else) is refused with the same
OpenAI-style 401 instead of being served to nobody in particular.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from ctxgate.api.identity import caller_of
from ctxgate.api.responses import client_error
from ctxgate.errors import Unauthorized

PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json"})
"""Routes that template.yaml serves without an authorizer (``Auth: Authorizer: NONE``)."""


def require_caller(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
    if app.current_event.path not in PUBLIC_PATHS:
        try:
            caller_of(app.current_event.raw_event)
        except Unauthorized as error:
            return client_error(error)
    return next_middleware(app)
