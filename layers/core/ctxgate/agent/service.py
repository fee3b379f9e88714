"""Agent runs: create, start, step, cancel and report. Each public method is what one handler does.

The state machine carries only ``{tenant, run_id}`` (and tool-call ids); everything else is read here from the
runs table and the session the run extends.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ctxgate.agent.models import TERMINAL, PendingCall, Run, RunRequest, Step
from ctxgate.agent.ports import ExecutionExists, Executions, RunQueue, RunStatusConflict, RunStore
from ctxgate.agent.tools import ToolError, run_tool
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.chat.service import ChatService
from ctxgate.context.models import CompactionRequest
from ctxgate.errors import InvalidRequest, NotFound, RateLimited
from ctxgate.messages import GenerationParams, Message
from ctxgate.quotas.ports import RunSlots
from ctxgate.sessions.models import validate_session_id

MAX_RUN_SECONDS = 86_400
"""The longest deadline a run may set; a run without one holds its slot at most this long if it never ends."""
SLOT_GRACE_SECONDS = 300
RUN_SLOT_RETRY_AFTER = 10


@dataclass(frozen=True)
class RunReport:
    """A run and the steps it has taken so far."""

    run: Run
    steps: list[Step]


@dataclass(frozen=True)
class BudgetCheck:
    """Whether a run must stop (steps, tokens or deadline used up), and the compaction its session needs first."""

    over_budget: bool
    compaction: CompactionRequest | None


class AgentService:
    def __init__(
        self,
        runs: RunStore,
        chat: ChatService,
        *,
        queue: RunQueue | None,
        executions: Executions,
        tool_allowlist: list[str],
        slots: RunSlots | None = None,
        max_concurrent_runs: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runs = runs
        self.chat = chat
        self.queue = queue
        self.executions = executions
        self.tool_allowlist = tool_allowlist
        self.slots = slots
        """A tenant's concurrent runs (None: not capped)."""
        self.max_concurrent_runs = max_concurrent_runs
        self.clock = clock

    # -- API ---------------------------------------------------------------------------------------------------

    def create(self, caller: Caller, request: RunRequest) -> Run:
        """Create and queue a run for ``caller``, whose key every model call of the run counts against.

        Raises PermissionDenied (403) for a model outside the key's list and RateLimited (429) when the tenant
        already has ``max_concurrent_runs`` live runs; the slot is taken atomically here and given back when the
        run ends."""
        self.chat.spend.admit_model(caller, request.model)
        self.chat.router.resolve(request.model)
        tenant = caller.tenant
        run_id = f"run_{uuid.uuid4().hex}"
        session_id = validate_session_id(request.session_id) if request.session_id else f"run-{run_id}"
        if self.queue is None:
            raise InvalidRequest("Agent runs are not configured (no runs queue).", code="runs_unavailable")
        now = self.clock()
        deadline_at = now + request.deadline_seconds if request.deadline_seconds else None
        self._take_slot(tenant, run_id, (deadline_at or now + MAX_RUN_SECONDS) + SLOT_GRACE_SECONDS, now)
        run = Run(
            id=run_id,
            tenant=tenant,
            status="queued",
            model=request.model,
            session_id=session_id,
            tools=request.tools,
            input=request.input,
            max_steps=request.max_steps,
            max_tokens=request.max_tokens,
            deadline_at=deadline_at,
            created_at=now,
            updated_at=now,
            key_id=caller.key_id,
            key_limits=caller.limits,
        )
        try:
            self.runs.create(run)
            self.queue.enqueue(tenant, run_id)
        except BaseException:
            self._ended(run)
            raise
        return run

    def _take_slot(self, tenant: str, run_id: str, expires_at: float, now: float) -> None:
        if self.slots is None:
            return
        if not self.slots.acquire(tenant, run_id, cap=self.max_concurrent_runs, expires_at=expires_at, now=now):
            raise RateLimited(
                f"At most {self.max_concurrent_runs} agent runs may be active at once; wait for one to end.",
                retry_after=RUN_SLOT_RETRY_AFTER,
                code="concurrent_runs_exceeded",
            )

    def _ended(self, run: Run) -> None:
        """Give back the run's slot (idempotent, so every path that ends a run may call it)."""
        if self.slots is not None:
            self.slots.release(run.tenant, run.id)

    def get(self, tenant: str, run_id: str) -> Run:
        run = self.runs.get(tenant, run_id)
        if run is None:
            raise NotFound(f"No run {run_id!r}.", code="run_not_found")
        return run

    def report(self, tenant: str, run_id: str) -> RunReport:
        return RunReport(self.get(tenant, run_id), self.runs.steps(tenant, run_id))

    def cancel(self, tenant: str, run_id: str) -> RunReport:
        run = self.get(tenant, run_id)
        if run.status not in TERMINAL:
            self._finish(run, "cancelled", expected={"queued", "running"})
            if run.execution_arn:
                self.executions.stop(run.execution_arn, cause="cancelled by API")
        return self.report(tenant, run_id)

    # -- starter ---------------------------------------------------------------------------------------------

    def start(self, tenant: str, run_id: str) -> str:
        """Start the run's execution, named after the run: a duplicate delivery can never start a second one."""
        import json

        run = self.runs.get(tenant, run_id)
        if run is None or run.status in TERMINAL:
            return "skipped"
        try:
            arn = self.executions.start(run_id, json.dumps({"tenant": tenant, "run_id": run_id}))
        except ExecutionExists:
            return "duplicate"
        if run.status == "queued":
            run = run.model_copy(update={"status": "running", "execution_arn": arn, "updated_at": self.clock()})
            self.runs.save(run, expected_status={"queued"})
        return "started"

    # -- state machine tasks -----------------------------------------------------------------------------------

    def model_step(self, tenant: str, run_id: str) -> dict[str, Any]:
        run = self.get(tenant, run_id)
        if run.status in TERMINAL:
            raise RunNotActive(f"run {run_id} is {run.status}")
        new = list(run.input) if run.steps_used == 0 else self._tool_results(run)
        tools = [t.openai() for t in run.tools] or None
        started = self.clock()
        outcome = self.chat.stateful(
            run.caller(), run.session_id, ChatRequest(run.model, new, GenerationParams(tools=tools, temperature=0))
        )
        number = run.steps_used + 1
        usage = outcome.usage
        self.runs.put_step(
            tenant,
            run_id,
            Step(
                number=number,
                kind="model",
                started_at=started,
                duration_ms=int((self.clock() - started) * 1000),
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                cache=outcome.cache.status if outcome.cache else None,
            ),
        )
        calls = outcome.completion.message.tool_calls or []
        update: dict[str, Any] = {
            "steps_used": number,
            "tokens_used": run.tokens_used + usage.total_tokens,
            "pending": [PendingCall(id=c.id, name=c.function.name, arguments=c.function.arguments) for c in calls],
            "updated_at": self.clock(),
            "status": "running",
        }
        finished = not calls
        if finished:
            update.update(status="succeeded", output=outcome.completion.message.text())
        run = run.model_copy(update=update)
        self.runs.save(run, expected_status={"queued", "running"})
        if finished:
            self._ended(run)
        over = not finished and number >= run.max_steps
        return {
            "finished": finished,
            "over_budget": over,
            "step": number,
            "tool_calls": [{"tenant": tenant, "run_id": run_id, "tool_call_id": c.id} for c in calls],
        }

    def tool_step(self, tenant: str, run_id: str, tool_call_id: str, failure: dict[str, Any] | None = None) -> None:
        """Run one requested tool and record its result; a transient failure raises for the state machine to
        retry, and ``failure`` (after the retries) records it as an error result the model will see."""
        run = self.get(tenant, run_id)
        call = next((c for c in run.pending if c.id == tool_call_id), None)
        if call is None:
            raise InvalidRequest(f"run {run_id} has no pending tool call {tool_call_id}")
        if self.runs.tool_step(tenant, run_id, run.steps_used, tool_call_id) is not None:
            return  # already recorded by an earlier attempt
        started = self.clock()
        is_error = False
        if failure is not None:
            result, is_error = f"Tool failed after retries: {_failure_message(failure)}", True
        else:
            spec = next((t for t in run.tools if t.function.name == call.name), None)
            if spec is None:
                result, is_error = f"Unknown tool {call.name!r}.", True
            else:
                try:
                    result = run_tool(spec, call.arguments, self.tool_allowlist)
                except ToolError as error:
                    result, is_error = str(error), True
        self.runs.put_step(
            tenant,
            run_id,
            Step(
                number=run.steps_used,
                kind="tool",
                started_at=started,
                duration_ms=int((self.clock() - started) * 1000),
                tool=call.name,
                tool_call_id=call.id,
                is_error=is_error,
                result=result,
            ),
            requested_by=run.steps_used,
        )

    def check_budget(self, tenant: str, run_id: str) -> BudgetCheck:
        """Steps, tokens and deadline; and, when the run goes on, the compaction its session needs now (if any)."""
        run = self.get(tenant, run_id)
        over = (
            run.steps_used >= run.max_steps
            or (run.max_tokens is not None and run.tokens_used >= run.max_tokens)
            or (run.deadline_at is not None and self.clock() >= run.deadline_at)
        )
        return BudgetCheck(over, None if over else self.chat.engine.compaction_due(tenant, run.session_id))

    def stopped_for_budget(self, tenant: str, run_id: str) -> None:
        run = self.get(tenant, run_id)
        self._finish(run, "stopped_for_budget", expected={"queued", "running"})

    def failed(self, tenant: str, run_id: str, error: dict[str, Any]) -> None:
        run = self.get(tenant, run_id)
        if run.status in TERMINAL:
            return
        run = run.model_copy(
            update={"error": str(error.get("Error", "Error")), "cause": str(error.get("Cause", ""))[:4000]}
        )
        self._finish(run, "failed", expected={"queued", "running"})

    def _finish(self, run: Run, status: str, *, expected: set[str]) -> None:
        # If it ended another way first (cancelled, or finished), the first ending stands.
        with contextlib.suppress(RunStatusConflict):
            self.runs.save(
                run.model_copy(update={"status": status, "updated_at": self.clock()}), expected_status=expected
            )
        self._ended(run)

    def _tool_results(self, run: Run) -> list[Message]:
        messages = []
        for call in run.pending:
            step = self.runs.tool_step(run.tenant, run.id, run.steps_used, call.id)
            if step is None:
                raise ToolResultMissing(f"tool call {call.id} has no result yet")
            content = step.result or ""
            if step.is_error:
                content = f"ERROR: {content}"
            messages.append(Message(role="tool", tool_call_id=call.id, content=content))
        return messages


def _failure_message(failure: dict[str, Any]) -> str:
    """The error message of a Step Functions failure whose cause is a Lambda error payload (no stack trace)."""
    import json

    cause = str(failure.get("Cause", ""))
    with contextlib.suppress(ValueError, AttributeError):
        cause = json.loads(cause).get("errorMessage", cause)
    return f"{failure.get('Error', 'Error')}: {cause}"[:2000]


class RunNotActive(Exception):
    """The run already ended (cancelled, or stopped); the execution stops here."""


class ToolResultMissing(Exception):
    """The Map over the tool calls ended without a recorded result for one of them (a lost write): the run fails
    with this as its cause rather than call the model with an incomplete set of results."""
