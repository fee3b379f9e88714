"""Ports of the agent-run domain: where runs are stored, how their executions are started and stopped, and how
a tool call is run."""

from __future__ import annotations

from typing import Any, Protocol

from ctxgate.agent.models import Run, Step, ToolSpec


class ExecutionExists(Exception):
    """An execution with this name was already started (a duplicate start)."""


class RunStatusConflict(Exception):
    """The run's stored status was no longer the one expected (it was cancelled, or ended, meanwhile)."""


class RunStore(Protocol):
    def create(self, run: Run) -> None: ...

    def get(self, tenant: str, run_id: str) -> Run | None: ...

    def save(self, run: Run, *, expected_status: set[str]) -> None:
        """Write ``run`` if its stored status is still one of ``expected_status``; else raise
        :class:`RunStatusConflict`."""
        ...

    def put_step(self, tenant: str, run_id: str, step: Step, *, requested_by: int = 0) -> bool:
        """Record a step once; False if it was already recorded."""
        ...

    def model_step(self, tenant: str, run_id: str, number: int) -> Step | None: ...

    def finish_model_step(self, tenant: str, run_id: str, step: Step) -> None:
        """Replace the in-progress record of model step ``step.number`` with the finished one."""
        ...

    def stuck(self, now: float, *, limit: int = 100) -> list[tuple[str, str]]:
        """(tenant, run id) of up to ``limit`` runs still queued or running after their deadline."""
        ...

    def tool_step(self, tenant: str, run_id: str, requested_by: int, tool_call_id: str) -> Step | None: ...

    def steps(self, tenant: str, run_id: str) -> list[Step]: ...


class Executions(Protocol):
    def start(self, name: str, payload: str) -> str:
        """Start an execution named ``name``; returns its ARN. Raises :class:`ExecutionExists` for a duplicate."""
        ...

    def stop(self, execution_arn: str, *, cause: str) -> None:
        """Stop an execution; one that no longer exists is already stopped."""
        ...


class RunQueue(Protocol):
    def enqueue(self, tenant: str, run_id: str) -> None:
        """Queue the run for the starter, which starts its execution."""
        ...


class ToolError(Exception):
    """The tool failed, or may not run, in a way retrying will not fix: the model sees the message as an error
    result (at run creation, the caller gets a 400)."""


class TransientError(Exception):
    """A timeout, a refused connection, a 429 or a 5xx: Step Functions retries it (it matches this class name)."""


class ToolRunner(Protocol):
    """Runs the tool calls of agent runs: a webhook, or an operator-listed Lambda function."""

    def check(self, spec: ToolSpec) -> None:
        """Refuse, without any network call, a tool this runner would never run (a Lambda function the operator
        did not list, a webhook URL on a refused port, host or address). Raises :class:`ToolError`."""
        ...

    def run(self, spec: ToolSpec, arguments: dict[str, Any], *, idempotency_key: str) -> str:
        """Run one call and return the tool's text result. ``idempotency_key`` (``<run id>:<tool call id>``) is the
        same for every retry of the call. Raises :class:`ToolError` (permanent) or :class:`TransientError`."""
        ...
