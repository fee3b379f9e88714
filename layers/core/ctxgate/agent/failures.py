"""What a failed run may tell its caller about the failure.

Step Functions hands the failure over as ``{"Error", "Cause"}``; for a Lambda task the cause is the runtime's
error payload (``errorMessage``, ``errorType`` and the ``stackTrace``). Only ctxgate's own errors have messages
written for clients (see :mod:`ctxgate.errors`); anything else (a botocore error naming an ARN, a bug's traceback)
is summarised, and its full cause is logged by the caller.
"""

from __future__ import annotations

import json
from typing import Any

from ctxgate.errors import CtxgateError

GENERIC_CAUSE = "The run failed inside the gateway; its logs hold the details."
# Ended by the state machine itself; their causes are Step Functions' own wording, with no stack trace.
STATES_ERRORS = frozenset({"States.Timeout", "States.HeartbeatTimeout", "States.ExceedToleratedFailureThreshold"})
AGENT_ERRORS = frozenset({"RunNotActive", "ToolResultMissing"})


def _client_safe_errors() -> frozenset[str]:
    names: set[str] = set(AGENT_ERRORS)
    pending: list[type[CtxgateError]] = [CtxgateError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return frozenset(names)


def public_cause(failure: dict[str, Any]) -> str:
    """The cause to show a run's caller: a ctxgate error's message, a Step Functions timeout's wording, or a
    generic sentence; never a stack trace."""
    error = str(failure.get("Error", ""))
    cause = str(failure.get("Cause", ""))
    if error in STATES_ERRORS:
        return f"{error}: the run exceeded its time limit."
    if error in _client_safe_errors():
        try:
            payload = json.loads(cause)
        except ValueError:
            return GENERIC_CAUSE
        if isinstance(payload, dict) and isinstance(payload.get("errorMessage"), str):
            return payload["errorMessage"][:2000]
    return GENERIC_CAUSE
