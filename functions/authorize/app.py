"""HTTP API Lambda authorizer (payload format 2.0, simple responses): ``Authorization: Bearer <key>`` or
``x-api-key: <key>`` in, ``{"isAuthorized", "context": {"tenant", "key_id", ...limits}}`` out.

Answers are cached per key in this warm function for ``CTXGATE_AUTH_CACHE_TTL_SECONDS`` (see
``ctxgate.auth.authenticator`` for why not in API Gateway). The key itself is never logged; its id may be.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from ctxgate.api.authorizer import authorize  # the domain loads on first use, not at cold start
    from ctxgate.bootstrap import key_authenticator

    answer = authorize(event, key_authenticator())
    key_id = (answer.get("context") or {}).get("key_id")
    logger.info("authorized" if answer["isAuthorized"] else "refused", extra={"key_id": key_id})
    return answer
