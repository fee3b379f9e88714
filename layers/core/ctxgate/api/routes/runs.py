"""``/v1/runs``: agent runs on Step Functions (create, read, cancel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.idempotency import IDEMPOTENCY_HEADER, idempotent
from ctxgate.api.identity import caller_of, tenant_of
from ctxgate.api.responses import json_response
from ctxgate.errors import InvalidRequest

if TYPE_CHECKING:
    from ctxgate.agent.models import RunReport

router = APIGatewayHttpRouter()


def _tenant() -> str:
    return tenant_of(router.current_event.raw_event)


@router.post("/v1/runs")
def create_run() -> Response:
    from pydantic import ValidationError

    from ctxgate.agent.models import RunRequest
    from ctxgate.bootstrap import agent_service

    try:
        request = RunRequest.model_validate_json(router.current_event.decoded_body or "")
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"Invalid run: {first['msg']}", param=param) from None
    event = router.current_event
    caller = caller_of(event.raw_event)

    def create() -> Response:
        run = agent_service().create(caller, request)
        return json_response(202, {"id": run.id, "object": "run", "status": run.status})

    # With Idempotency-Key, a repeat gets the first 202 (the same run id) instead of a second run.
    return idempotent(
        route="POST /v1/runs",
        tenant=caller.tenant,
        key=event.headers.get(IDEMPOTENCY_HEADER),
        body=event.decoded_body or "",
        context=router.lambda_context,
        execute=create,
    )


@router.get("/v1/runs/<run_id>")
def get_run(run_id: str) -> Response:
    from ctxgate.bootstrap import agent_service

    return json_response(200, run_body(agent_service().report(_tenant(), run_id)))


@router.post("/v1/runs/<run_id>/cancel")
def cancel_run(run_id: str) -> Response:
    from ctxgate.bootstrap import agent_service

    return json_response(200, run_body(agent_service().cancel(_tenant(), run_id)))


def run_body(report: RunReport) -> dict[str, Any]:
    """The public view of a run: its status, steps (tokens, timings, cache status), output and error."""
    run = report.run
    return {
        "id": run.id,
        "object": "run",
        "status": run.status,
        "model": run.model,
        "session_id": run.session_id,
        "created_at": int(run.created_at),
        "updated_at": int(run.updated_at),
        "steps": [s.model_dump(exclude_none=True) for s in report.steps],
        "output": run.output,
        "error": {"error": run.error, "cause": run.cause} if run.error else None,
    }
