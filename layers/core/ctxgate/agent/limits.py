"""The operator's limits on agent runs: steps, deadline, and the tools a run may use."""

from __future__ import annotations

from dataclasses import dataclass

from ctxgate.agent.models import MAX_DEADLINE_CEILING_SECONDS, MAX_STEPS_CEILING, RunRequest
from ctxgate.agent.ports import ToolError, ToolRunner
from ctxgate.errors import InvalidRequest


@dataclass(frozen=True)
class RunLimits:
    """The operator's limits on a run (``CTXGATE_MAX_RUN_STEPS``, ``CTXGATE_MAX_RUN_DEADLINE_SECONDS``); a run
    without a deadline gets the longest one allowed."""

    max_steps: int = 25
    max_deadline_seconds: int = 900

    def __post_init__(self) -> None:
        if not 1 <= self.max_steps <= MAX_STEPS_CEILING:
            raise ValueError(f"the run step limit must be between 1 and {MAX_STEPS_CEILING}")
        if not 1 <= self.max_deadline_seconds <= MAX_DEADLINE_CEILING_SECONDS:
            raise ValueError(f"the run deadline limit must be between 1 and {MAX_DEADLINE_CEILING_SECONDS} seconds")

    def check(self, request: RunRequest, tools: ToolRunner) -> int:
        """The run's deadline in seconds, once its steps, deadline and tools are within what this gateway allows."""
        if request.max_steps > self.max_steps:
            raise InvalidRequest(
                f"max_steps may be at most {self.max_steps} on this gateway.",
                code="run_limit_exceeded",
                param="max_steps",
            )
        deadline = request.deadline_seconds or self.max_deadline_seconds
        if deadline > self.max_deadline_seconds:
            raise InvalidRequest(
                f"deadline_seconds may be at most {self.max_deadline_seconds} on this gateway.",
                code="run_limit_exceeded",
                param="deadline_seconds",
            )
        for index, spec in enumerate(request.tools):
            try:
                tools.check(spec)
            except ToolError as refused:
                raise InvalidRequest(f"{refused}.", code="tool_not_allowed", param=f"tools.{index}") from None
        return deadline
