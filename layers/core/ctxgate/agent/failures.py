"""What a failed run shows: a clean error type and message, never a stack trace or an upstream's internals.

The state machine hands the run-status task Step Functions' ``{"Error", "Cause"}``, where ``Cause`` is a Lambda
error payload (message, type and stack trace) or a Step Functions message. Only ctxgate's own errors, whose
messages are written for clients, keep their message; errors that quote an upstream get a fixed message; any
other error becomes ``InternalError``. The full failure goes to the logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from ctxgate.errors import CtxgateError

logger = logging.getLogger(__name__)

INTERNAL = ("InternalError", "The run failed with an internal error; the gateway's logs have the details.")
_FIXED_MESSAGES = {
    # Their messages quote the provider's answer (hosts, bodies): show what happened, not what it said.
    "ProviderFailure": "All providers failed for the run's model; the gateway's logs have the details.",
    "UpstreamRejected": "The model provider rejected the run's request; the gateway's logs have the details.",
    "States.Timeout": "A step of the run timed out.",
    "States.HeartbeatTimeout": "A step of the run timed out.",
}
_AGENT_ERRORS = frozenset({"RunNotActive", "ToolResultMissing"})
MAX_MESSAGE_CHARS = 500


def _ctxgate_error_names() -> set[str]:
    names, pending = set(), [CtxgateError]
    while pending:
        kind = pending.pop()
        names.add(kind.__name__)
        pending.extend(kind.__subclasses__())
    return names


def public_failure(failure: dict[str, Any]) -> tuple[str, str]:
    """``(error type, message)`` for a Step Functions failure ``{"Error", "Cause"}``, safe to store and show."""
    kind = str(failure.get("Error") or "")
    logger.warning("agent run failed", extra={"error": kind, "cause": str(failure.get("Cause", ""))[:8000]})
    if kind in _FIXED_MESSAGES:
        return kind, _FIXED_MESSAGES[kind]
    if kind in _AGENT_ERRORS or kind in _ctxgate_error_names():
        message = lambda_error_message(failure.get("Cause"))
        return kind, message or kind
    return INTERNAL


def lambda_error_message(cause: Any) -> str:
    """The ``errorMessage`` of a Lambda error payload (its first line, bounded), or the cause if it is plain text;
    never the ``stackTrace``."""
    text = str(cause or "")
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("errorMessage", ""))
    return text.strip().splitlines()[0][:MAX_MESSAGE_CHARS] if text.strip() else ""
