"""Running a tool call, on the domain side: the model's arguments are checked here, and the call goes to the
:class:`~ctxgate.agent.ports.ToolRunner` for the tool's kind (a webhook or a Lambda function).

A permanent failure becomes an error *result* the model can react to (:class:`ToolError`); a transient one raises
:class:`TransientError`, which the state machine retries.
"""

from __future__ import annotations

import json
from typing import Any

from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError, ToolRunner, TransientError

__all__ = ["ToolDispatcher", "ToolError", "TransientError", "idempotency_key", "parse_arguments"]


def parse_arguments(arguments_json: str) -> dict[str, Any]:
    """The model's arguments as a JSON object; raises :class:`ToolError` for anything else."""
    try:
        arguments = json.loads(arguments_json or "{}")
    except json.JSONDecodeError as error:
        raise ToolError(f"the model's arguments are not JSON: {error}") from None
    if not isinstance(arguments, dict):
        raise ToolError("the model's arguments must be a JSON object")
    return arguments


def idempotency_key(run_id: str, tool_call_id: str) -> str:
    """The same for every retry of one tool call, and different for every other call."""
    return f"{run_id}:{tool_call_id}"


class ToolDispatcher:
    """A :class:`ToolRunner` that hands each tool to the runner for its kind."""

    def __init__(self, *, webhook: ToolRunner, function: ToolRunner) -> None:
        self.webhook = webhook
        self.function = function

    def runner(self, spec: ToolSpec) -> ToolRunner:
        return self.webhook if spec.endpoint is not None else self.function

    def check(self, spec: ToolSpec) -> None:
        self.runner(spec).check(spec)

    def run(self, spec: ToolSpec, arguments: dict[str, Any], *, idempotency_key: str) -> str:
        return self.runner(spec).run(spec, arguments, idempotency_key=idempotency_key)
