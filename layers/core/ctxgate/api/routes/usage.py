"""``GET /v1/usage``: the caller's tenant's usage and cost over a period, by day, model or key."""

from __future__ import annotations

import datetime as dt

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from ctxgate.api.identity import tenant_of
from ctxgate.api.responses import json_response

router = APIGatewayHttpRouter()


@router.get("/v1/usage")
def get_usage() -> Response:
    from ctxgate.bootstrap import usage_ledger
    from ctxgate.quotas.report import parse_group_by, parse_period, usage_report

    event = router.current_event
    tenant = tenant_of(event.raw_event)
    group_by = parse_group_by(event.get_query_string_value("group_by"))
    today = dt.datetime.now(dt.UTC).date()
    start, end = parse_period(event.get_query_string_value("start"), event.get_query_string_value("end"), today=today)
    records = usage_ledger().usage(tenant, start, end)
    return json_response(200, usage_report(tenant, start, end, group_by, records))
