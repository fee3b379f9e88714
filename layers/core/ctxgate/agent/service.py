"""Agent runs: create, start, step, cancel and report. Each public method is what one handler does.

The state machine carries only ``{tenant, run_id}`` (and tool-call ids); everything else is read here from the
runs table and the session the run extends.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from typing import Any

from ctxgate.agent.failures import lambda_error_message, public_failure
from ctxgate.agent.models import (
    MAX_TOOL_CALLS_PER_STEP,
    TERMINAL,
    BudgetCheck,
    PendingCall,
    Run,
    RunLimits,
    RunReport,
    RunRequest,
    Step,
)
from ctxgate.agent.ports import (
    ExecutionExists,
    Executions,
    RunQueue,
    RunStatusConflict,
    RunStore,
    ToolError,
    ToolRunner,
)
from ctxgate.agent.tools import idempotency_key, parse_arguments
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.chat.service import ChatService
from ctxgate.errors import InvalidRequest, NotFound
from ctxgate.messages import GenerationParams, Message, Usage
from ctxgate.quotas.runs import ConcurrentRuns
from ctxgate.sessions.models import validate_session_id


class AgentService:
    def __init__(
        self,
        runs: RunStore,
        chat: ChatService,
        *,
        queue: RunQueue | None,
        executions: Executions,
        tools: ToolRunner,
        limits: RunLimits | None = None,
        concurrency: ConcurrentRuns | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runs = runs
        self.chat = chat
        self.queue = queue
        self.executions = executions
        self.tools = tools
        self.limits = limits or RunLimits()
        self.concurrency = concurrency
        """The cap on a tenant's live runs (None: not capped)."""
        self.clock = clock

    # -- API ---------------------------------------------------------------------------------------------------

    def create(self, caller: Caller, request: RunRequest) -> Run:
        """Store and enqueue a run; every model call of it counts against ``caller``'s key. Raises PermissionDenied
        (403) for a model outside the key's list, :class:`InvalidRequest` (400) for a run over the limits or with a
        tool that may not run, and RateLimited (429) when the tenant has its cap of live runs."""
        self.chat.spend.admit_model(caller, request.model)
        self.chat.router.resolve(request.model)
        deadline_seconds = self._check_limits(request)
        tenant, run_id = caller.tenant, f"run_{uuid.uuid4().hex}"
        session_id = validate_session_id(request.session_id) if request.session_id else f"run-{run_id}"
        now = self.clock()
        if self.concurrency is not None:
            self.concurrency.take(tenant, run_id, deadline_at=now + deadline_seconds, now=now)
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
            deadline_at=now + deadline_seconds,
            created_at=now,
            updated_at=now,
            key_id=caller.key_id,
            key_limits=caller.limits,
        )
        try:
            self.runs.create(run)
            if self.queue is None:
                raise InvalidRequest("Agent runs are not configured (no runs queue).", code="runs_unavailable")
            self.queue.enqueue(tenant, run_id)
        except BaseException:
            self._ended(run)
            raise
        return run

    def _check_limits(self, request: RunRequest) -> int:
        """The run's deadline in seconds, once its steps, deadline and tools are within what this gateway allows."""
        limits = self.limits
        if request.max_steps > limits.max_steps:
            raise InvalidRequest(
                f"max_steps may be at most {limits.max_steps} on this gateway.",
                code="run_limit_exceeded",
                param="max_steps",
            )
        deadline = request.deadline_seconds or limits.max_deadline_seconds
        if deadline > limits.max_deadline_seconds:
            raise InvalidRequest(
                f"deadline_seconds may be at most {limits.max_deadline_seconds} on this gateway.",
                code="run_limit_exceeded",
                param="deadline_seconds",
            )
        for index, spec in enumerate(request.tools):
            try:
                self.tools.check(spec)
            except ToolError as refused:
                raise InvalidRequest(f"{refused}.", code="tool_not_allowed", param=f"tools.{index}") from None
        return deadline

    def _ended(self, run: Run) -> None:
        if self.concurrency is not None:
            self.concurrency.give_back(run.tenant, run.id)

    def get(self, tenant: str, run_id: str) -> Run:
        run = self.runs.get(tenant, run_id)
        if run is None or run.tenant != tenant:  # runs are keyed by tenant: another tenant's run is not there
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
        if run is None or run.tenant != tenant or run.status in TERMINAL:
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
        """One model call of the run. Idempotent: its step record is written before the call, with the session's
        last turn; a retry whose earlier attempt already stored its turn takes the reply from the session instead
        of appending the input (or tool results) again and paying for a second call."""
        run = self.get(tenant, run_id)
        if run.status in TERMINAL:
            raise RunNotActive(f"run {run_id} is {run.status}")
        new = list(run.input) if run.steps_used == 0 else self._tool_results(run)
        number = run.steps_used + 1
        begun = self._begin_model_step(run, number)
        reply = self._stored_reply(run, begun, new)
        if reply is None:
            tools = [t.openai() for t in run.tools] or None
            outcome = self.chat.stateful(
                run.caller(), run.session_id, ChatRequest(run.model, new, GenerationParams(tools=tools, temperature=0))
            )
            reply, usage = outcome.completion.message, outcome.usage
            cache = outcome.cache.status if outcome.cache else None
        else:
            usage, cache = Usage(prompt_tokens=0, completion_tokens=0), "recovered"
        self.runs.finish_model_step(
            tenant,
            run_id,
            begun.model_copy(
                update={
                    "in_progress": False,
                    "duration_ms": int((self.clock() - begun.started_at) * 1000),
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cache": cache,
                }
            ),
        )
        calls = reply.tool_calls or []
        runnable = calls[:MAX_TOOL_CALLS_PER_STEP]
        for extra in calls[MAX_TOOL_CALLS_PER_STEP:]:
            self._refuse_call(run, number, extra.id, extra.function.name)
        update: dict[str, Any] = {
            "steps_used": number,
            "tokens_used": run.tokens_used + usage.total_tokens,
            "pending": [PendingCall(id=c.id, name=c.function.name, arguments=c.function.arguments) for c in calls],
            "updated_at": self.clock(),
            "status": "running",
        }
        finished = not calls
        if finished:
            update.update(status="succeeded", output=reply.text())
        run = run.model_copy(update=update)
        self.runs.save(run, expected_status={"queued", "running"})
        if finished:
            self._ended(run)
        over = not finished and number >= run.max_steps
        return {
            "finished": finished,
            "over_budget": over,
            "step": number,
            "tool_calls": [{"tenant": tenant, "run_id": run_id, "tool_call_id": c.id} for c in runnable],
        }

    def _begin_model_step(self, run: Run, number: int) -> Step:
        """The step's record, written before the model call (or the one an earlier attempt wrote)."""
        meta = self.chat.store.get(run.tenant, run.session_id)
        begun = Step(
            number=number,
            kind="model",
            started_at=self.clock(),
            duration_ms=0,
            in_progress=True,
            session_seq=meta.last_seq if meta else 0,
        )
        if self.runs.put_step(run.tenant, run.id, begun):
            return begun
        earlier = self.runs.model_step(run.tenant, run.id, number)
        return earlier if earlier is not None else begun

    def _stored_reply(self, run: Run, begun: Step, new: list[Message]) -> Message | None:
        """The reply an earlier attempt of this step stored in the session, if it got that far: the turns after
        the step's mark start with this step's input, followed by the assistant's reply."""
        if begun.session_seq is None:
            return None
        turns = self.chat.store.turns(run.tenant, run.session_id, after=begun.session_seq, limit=len(new) + 1).turns
        if len(turns) != len(new) + 1 or turns[-1].message.role != "assistant":
            return None
        mine = all(
            (t.message.role, t.message.tool_call_id, t.message.text()) == (m.role, m.tool_call_id, m.text())
            for t, m in zip(turns, new, strict=False)
        )
        return turns[-1].message if mine else None

    def sweep_stuck(self, now: float, *, limit: int = 100) -> int:
        """Fail runs still queued or running past their deadline (a start message lost to the DLQ, an execution
        that died without its Catch). Returns how many were failed."""
        failed = 0
        for tenant, run_id in self.runs.stuck(now, limit=limit):
            run = self.runs.get(tenant, run_id)
            if run is None or run.status in TERMINAL or run.deadline_at is None or run.deadline_at >= now:
                continue
            stuck = run.model_copy(
                update={"error": "DeadlineExceeded", "cause": f"The run was still {run.status} after its deadline."}
            )
            self._finish(stuck, "failed", expected={"queued", "running"})
            if run.execution_arn:
                self.executions.stop(run.execution_arn, cause="deadline exceeded")
            failed += 1
        return failed

    def _refuse_call(self, run: Run, number: int, tool_call_id: str, name: str) -> None:
        """Record a call over the per-step limit as an error result: the model sees it, and the session stays
        well-formed (every tool call of an assistant message gets its tool message)."""
        self.runs.put_step(
            run.tenant,
            run.id,
            Step(
                number=number,
                kind="tool",
                started_at=self.clock(),
                duration_ms=0,
                tool=name,
                tool_call_id=tool_call_id,
                is_error=True,
                result=f"Not run: at most {MAX_TOOL_CALLS_PER_STEP} tool calls run per step; ask again next step.",
            ),
            requested_by=number,
        )

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
                    arguments = parse_arguments(call.arguments)
                    result = self.tools.run(spec, arguments, idempotency_key=idempotency_key(run_id, call.id))
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
        kind, message = public_failure(error)
        run = run.model_copy(update={"error": kind, "cause": message})
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
    return f"{failure.get('Error', 'Error')}: {lambda_error_message(failure.get('Cause'))}"


class RunNotActive(Exception):
    """The run already ended (cancelled, or stopped); the execution stops here."""


class ToolResultMissing(Exception):
    """The Map over the tool calls ended without a recorded result for one of them (a lost write): the run fails
    with this as its cause rather than call the model with an incomplete set of results."""
