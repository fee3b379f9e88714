"""``GET /v1/models`` and ``GET /healthz`` (api/routes/models.py) through functions/api/app.py, on moto."""

from __future__ import annotations

import json

from tests.conftest import load_event
from tests.functional.api.routes.invocations import call


def get_event(path: str) -> dict:
    event = load_event("get_session.json", rawPath=path, routeKey=f"GET {path}")
    event["requestContext"]["http"]["path"] = path
    return event


def test_models_lists_the_configured_models(api, lambda_context, aws):
    # GIVEN a deployment with the bundled models file (echo only)
    event = get_event("/v1/models")
    # WHEN a client lists the models
    status, _, body = call(api, lambda_context, event)
    # THEN it sees exactly the echo model
    assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["echo"]


def test_health_check_reports_ok(api, lambda_context, aws):
    # GIVEN a deployed api function
    event = get_event("/healthz")
    # WHEN a load balancer or operator checks its health
    _, _, body = call(api, lambda_context, event)
    # THEN it answers {"status": "ok"}
    assert json.loads(body) == {"status": "ok"}
