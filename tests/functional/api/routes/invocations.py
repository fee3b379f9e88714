"""Invoke the api function with API Gateway HTTP API v2 events from events/ and read its response."""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any

from tests.conftest import load_event


def call(api: ModuleType, context: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], str]:
    """Status, lower-cased headers and the decoded body of one invocation."""
    response = api.lambda_handler(event, context)
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response["statusCode"], {k.lower(): v for k, v in response.get("headers", {}).items()}, body


def route_event(method: str, path: str, *, body: Any = None, query: Any = None, headers: Any = None) -> dict:
    """An event for ``method path``, built from the get_session sample event."""
    event = load_event(
        "get_session.json", rawPath=path, routeKey=f"{method} {path}", queryStringParameters=query, rawQueryString=""
    )
    event["requestContext"]["http"].update(method=method, path=path)
    if body is not None:
        event["body"] = json.dumps(body)
    event["headers"].update(headers or {})
    return event


def stored_turns(aws: Any) -> int:
    """How many turn items the sessions table holds, across every session."""
    return int(
        aws.session.client("dynamodb").scan(
            TableName=aws.table,
            FilterExpression="begins_with(sk, :turn)",
            ExpressionAttributeValues={":turn": {"S": "TURN#"}},
        )["Count"]
    )
