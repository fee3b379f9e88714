"""``Idempotency-Key`` on creation routes, with Powertools Idempotency over its DynamoDB persistence layer.

A request that carries the header is executed once per (tenant, route, key) for 24 hours: a repeat gets the first
response (status, headers and body, plus ``Idempotent-Replayed: true``) without a second model call, turn or run.
The same key with a different body is a 422; a repeat while the first is still in flight is a 409. A request whose
first attempt failed may be retried with the same key (Powertools forgets a failed execution). Requests without
the header pay nothing for this: Powertools' idempotency utility is imported only when a key is present.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import Response

from ctxgate.errors import CtxgateError, InvalidRequest
from ctxgate.settings import get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
WINDOW_SECONDS = 24 * 3600


class IdempotencyKeyReused(InvalidRequest):
    status = 422
    code = "idempotency_key_reused"


class IdempotencyInProgress(CtxgateError):
    status = 409
    type = "conflict_error"
    code = "idempotency_request_in_progress"
    retry_after = 1


@cache
def _persistence(table: str) -> DynamoDBPersistenceLayer:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from ctxgate.aws import client

    return DynamoDBPersistenceLayer(table_name=table, boto3_client=client("dynamodb"))


def idempotent(
    *,
    route: str,
    tenant: str,
    key: str | None,
    body: str,
    context: LambdaContext | None,
    execute: Callable[[], Response],
    headers: Mapping[str, str | None] | None = None,
) -> Response:
    """``execute()``'s response, or the stored response of the first request with this ``key``.

    ``headers`` are the request headers that change what the request does (its session, budget, cache policy):
    they are part of the request the key stands for, like the body, so a repeat that changes one of them is the
    key reused for another request (422), never answered with the first request's response."""
    if key is None:
        return execute()
    if not KEY_PATTERN.fullmatch(key):
        raise InvalidRequest("Idempotency-Key is 1 to 255 printable ASCII characters.", param=IDEMPOTENCY_HEADER)
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    config = IdempotencyConfig(
        event_key_jmespath="[tenant, route, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=WINDOW_SECONDS,
    )
    if context is not None:
        config.register_lambda_context(context)  # an attempt that dies is "in progress" only until its timeout
    executed = False

    def run(request: dict[str, Any]) -> dict[str, Any]:
        nonlocal executed
        executed = True
        response = execute()
        body = response.body if isinstance(response.body, str) else (response.body or b"").decode()
        headers = {k: v for k, v in response.headers.items() if isinstance(v, str)}
        return {"status": response.status_code, "type": response.content_type, "headers": headers, "body": body}

    guarded = idempotent_function(
        run,
        data_keyword_argument="request",
        config=config,
        persistence_store=_persistence(get_settings().idempotency_table_name),
    )
    varying = {name.lower(): value for name, value in (headers or {}).items() if value is not None}
    signed = body if not varying else json.dumps({"body": body, "headers": varying}, sort_keys=True)
    request = {"tenant": tenant, "route": route, "key": key, "body": hashlib.sha256(signed.encode()).hexdigest()}
    try:
        stored = guarded(request=request)
    except IdempotencyValidationError:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with a different request body.", param=IDEMPOTENCY_HEADER
        ) from None
    except IdempotencyAlreadyInProgressError:
        raise IdempotencyInProgress(
            "A request with this Idempotency-Key is still in progress; retry once it has finished."
        ) from None
    headers = dict(stored["headers"])
    if not executed:
        headers[REPLAYED_HEADER] = "true"
    return Response(stored["status"], stored["type"], stored["body"], headers=headers)
