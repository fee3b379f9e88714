"""``GET /openapi.json``: the OpenAPI 3.1 description of every route, served without authentication."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.responses import json_response

router = APIGatewayHttpRouter()


@router.get("/openapi.json")
def openapi_json() -> Response:
    # Built on the first request, not at import: the description costs nothing on a cold start that never asks.
    from ctxgate.api.openapi import openapi_document

    return json_response(200, openapi_document())
