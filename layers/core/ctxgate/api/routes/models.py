"""``GET /v1/models`` and ``GET /healthz``."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.responses import json_response

router = APIGatewayHttpRouter()


@router.get("/v1/models")
def list_models() -> Response:
    from ctxgate.bootstrap import model_router

    data = [
        {"id": m.name, "object": "model", "created": 0, "owned_by": m.provider} for m in model_router().models.values()
    ]
    return json_response(200, {"object": "list", "data": data})


@router.get("/healthz")
def healthz() -> Response:
    return json_response(200, {"status": "ok"})
