"""The chat turn: plan the context, call the model, and append the new turns atomically.

This is the domain service behind ``POST /v1/chat/completions`` and the agent loop's model step. It knows nothing
of HTTP or DynamoDB. Every limit that can reject a request is checked before anything is stored or paid for: the
key's models and the hard caps first, then (with the context planned, so the input tokens are known) a reservation
of the request's worst case in the key's quota windows, settled to the actual usage after the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from functools import partial

from ctxgate.auth.models import Caller
from ctxgate.cache.service import CacheLookup, ResponseCache
from ctxgate.chat.lease import single_flight
from ctxgate.chat.models import ChatOutcome, ChatRequest
from ctxgate.chat.streaming import ChatStream, ChatStreamHead, TurnSteps, finished, relay
from ctxgate.context.assemble import ContextBudgetExceeded
from ctxgate.context.engine import ContextEngine, PlannedContext, new_pin, validate_budget
from ctxgate.context.ports import ContextStore
from ctxgate.errors import CtxgateError, InvalidRequest, SessionConflict
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.providers.registry import ModelConfig, ModelRouter
from ctxgate.providers.streaming import StreamEvent, replay
from ctxgate.quotas.service import Hold, SpendControl
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.models import Pin, validate_session_id
from ctxgate.sessions.ports import AppendConflict
from ctxgate.tokens import count_message, count_messages, count_text

MAX_PIN_CHARS = 8000
DEFAULT_TURN_SECONDS = 25.0
"""How long a turn may hold its session when the request names no deadline (API Gateway's integration limit
is 29 s)."""
MIN_TURN_SECONDS = 5.0
"""A request stops waiting for its session this long before its deadline: the time a turn needs to be served."""


class HistoryMoved(CtxgateError):
    """The session's newest turn is no longer the one the request continues (``expected_last_seq``)."""

    status = 409
    type = "conflict_error"
    code = "history_moved"


class ChatService:
    def __init__(
        self,
        store: ContextStore,
        router: ModelRouter,
        engine: ContextEngine,
        *,
        cache: ResponseCache | None = None,
        spend: SpendControl | None = None,
        conflict_retries: int,
        conflict_deadline: float = 20.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.router = router
        self.engine = engine
        self.cache = cache
        self.spend = spend or SpendControl()
        # Conflicts resolve in milliseconds (someone else just wrote), so back off briefly but try often.
        self.conflict_policy = RetryPolicy(
            max_attempts=conflict_retries + 1, base_delay=0.05, max_delay=2.0, deadline=conflict_deadline
        )
        self.clock = clock
        self.sleep = sleep

    def stateless(self, caller: Caller, request: ChatRequest) -> ChatOutcome:
        """Forward the request as it is; no session is kept (the response may be cached)."""
        return finished(self._stateless(caller, request, streaming=False))

    def stateless_stream(self, caller: Caller, request: ChatRequest) -> ChatStream:
        """:meth:`stateless`, streamed (:mod:`ctxgate.chat.streaming`): raises what it raises, before any event."""
        return ChatStream(self._stateless(caller, request, streaming=True))

    def stateful_stream(self, caller: Caller, session_id: str, request: ChatRequest) -> ChatStream:
        """:meth:`stateful`, streamed: the lease is held while the stream lasts and the turn is appended once the
        upstream completed (a lost append race is not retried: the client already has the reply; it ends the
        stream with an error and stores nothing)."""
        return ChatStream(self._stateful(caller, session_id, request, streaming=True))

    def open_stream(self, caller: Caller, session_id: str | None, request: ChatRequest) -> ChatStream:
        """:meth:`stateful_stream` on ``session_id``, or :meth:`stateless_stream` without one."""
        if session_id is None:
            return self.stateless_stream(caller, request)
        return self.stateful_stream(caller, session_id, request)

    def _stateless(self, caller: Caller, request: ChatRequest, *, streaming: bool) -> TurnSteps:
        if request.budget_tokens is not None:  # no session to apply it to, but a bad value is still bad input
            validate_budget(request.budget_tokens)
        config = self._admit(caller, request)
        cap = self.spend.output_cap(config.max_output_tokens, request.params.output_limit())
        with self.spend.hold(caller, count_messages(request.messages) + cap) as hold:
            lookup = self._lookup(caller.tenant, request, request.messages)
            if lookup is not None and lookup.response is not None:
                hold.cache_hit(request.model)
                hit = lookup.response
                if streaming:
                    yield ChatStreamHead(hit.served_by, cache=lookup, rate_limits=hold.state)
                    yield from replay(hit.completion, usage=hit.usage)
                return ChatOutcome(hit.completion, hit.usage, hit.served_by, cache=lookup, rate_limits=hold.state)
            params = _bounded(request.params, cap, caller, config)
            head = (lambda served: ChatStreamHead(served, cache=lookup, rate_limits=hold.state)) if streaming else None
            completion, usage, served_by = yield from self._call(
                hold, request.model, request.messages, params, request.cache_points, head
            )
        if request.check_output is not None:
            request.check_output(completion)  # a refused answer is never cached
        self._remember(caller.tenant, lookup, completion, usage, served_by)
        return ChatOutcome(completion, usage, served_by, cache=lookup, rate_limits=hold.state)

    def _call(
        self,
        hold: Hold,
        model: str,
        messages: list[Message],
        params: GenerationParams,
        cache_points: list[int],
        head: Callable[[str], ChatStreamHead] | None,
    ) -> Generator[ChatStreamHead | StreamEvent, None, tuple[Completion, Usage, str]]:
        """The model call of a turn, and the settlement of its reservation. Buffered (``head`` None) it yields
        nothing; streaming, it yields ``head(served_by)`` once the first event arrived, then every event."""
        if head is None:
            completion, served = self.router.complete(model, messages, params, cache_points=cache_points)
        else:
            upstream, served = self.router.stream(model, messages, params, cache_points=cache_points)
            yield head(served.name)
            completion = yield from relay(upstream, hold, served.name, served.cost_of, messages)
        usage = _usage(completion, messages)
        hold.served(served.name, usage, served.cost_of(usage))
        return completion, usage, served.name

    def stateful(self, caller: Caller, session_id: str, request: ChatRequest) -> ChatOutcome:
        """Serve one turn of a session whose client sends only the new messages.

        On a lost race for the session's next sequence number the whole turn is retried (fresh context, fresh
        model call) with the project's retry helper, then :class:`SessionConflict` (409). Nothing is stored
        unless the model call succeeded.
        """
        return finished(self._stateful(caller, session_id, request, streaming=False))

    def _stateful(self, caller: Caller, session_id: str, request: ChatRequest, *, streaming: bool) -> TurnSteps:
        self.spend.admit_model(caller, request.model)
        validate_session_id(session_id)
        system, new = _split_system(request.messages)
        if request.budget_tokens is not None:
            validate_budget(request.budget_tokens)
        pin_contents = [pin_content(c) for c in request.pins]
        self._check_append_size(len(new) + 1, len(pin_contents))
        config = self._admit(caller, request)  # an unknown model is a 404 before any read
        self.spend.check_room(caller)  # planning may summarise (a model call): a full window stops it first
        hold_until = request.deadline or self.clock() + DEFAULT_TURN_SECONDS
        try:
            # One turn at a time per session: a request that lost the race waits here instead of paying for a
            # model call whose turn could not be stored. The conditional append below stays as the safety net.
            with single_flight(
                self.store,
                caller.tenant,
                session_id,
                wait_until=hold_until - MIN_TURN_SECONDS,
                hold_until=hold_until,
                clock=self.clock,
                sleep=self.sleep,
            ):
                turn = partial(self._turn, caller, config, session_id, request, system, new, pin_contents)
                if streaming:
                    outcome = yield from turn(True)
                else:
                    outcome = call_with_retry(lambda: finished(turn(False)), self.conflict_policy, sleep=self.sleep)
        except AppendConflict:
            raise SessionConflict(
                f"Session {session_id} kept changing under concurrent requests; retry the request."
            ) from None
        # Caching the answer (an embedding and a few writes) needs the turn, not the session: done after the lease
        # is released, so the next turn of the session does not wait for it. The entry's write is still refused
        # if the session is being deleted.
        if outcome.cache is not None and outcome.cache.response is None:
            completion, usage, served_by = outcome.completion, outcome.usage, outcome.served_by
            self._remember(caller.tenant, outcome.cache, completion, usage, served_by, session_id=session_id)
        return outcome

    def _check_append_size(self, turns: int, pins: int) -> None:
        """The new turns, pins and the session's metadata must fit in the store's one atomic append."""
        room = self.store.max_append_items - 1
        if turns + pins > room:
            raise InvalidRequest(
                f"At most {room - 1} new messages and pins fit in one stateful request.",
                code="too_many_messages",
                param="messages",
            )

    def _turn(
        self,
        caller: Caller,
        config: ModelConfig,
        session_id: str,
        request: ChatRequest,
        system: Message | None,
        new: list[Message],
        pin_contents: list[str],
        streaming: bool,
    ) -> TurnSteps:
        tenant = caller.tenant
        now = self.clock()
        pins = [new_pin(c, now) for c in pin_contents]
        if request.expected_last_seq is not None:
            current = self.store.get(tenant, session_id)
            if (current.last_seq if current else 0) != request.expected_last_seq:
                raise HistoryMoved(f"Session {session_id} has moved past turn {request.expected_last_seq}.")
        planned = self.plan(tenant, session_id, request, new, system=system, pins=pins)
        plan = planned.plan
        if not request.allow_truncation and (
            plan.evicted or plan.summarised or len(plan.included) < len(planned.state.recent)
        ):
            raise ContextBudgetExceeded("The conversation does not fit the context budget and truncation is disabled.")
        cap = self.spend.output_cap(config.max_output_tokens, request.params.output_limit())
        meta = planned.meta
        reply_seq = (meta.last_seq if meta else 0) + len(new) + 1
        # Settled as soon as the model answered: a lost append race below retries the turn, but this call was paid.
        with self.spend.hold(caller, plan.input_tokens + cap) as hold:
            lookup = self._lookup(tenant, request, plan.messages)

            def head(served_by: str) -> ChatStreamHead:
                return ChatStreamHead(served_by, session_id, reply_seq, plan, lookup, hold.state)

            if lookup is not None and lookup.response is not None:
                # A hit still becomes the session's next turn, so the conversation continues correctly.
                hit = lookup.response
                completion, usage, served_by = hit.completion, hit.usage, hit.served_by
                hold.cache_hit(request.model)
                if streaming:
                    yield head(served_by)
                    yield from replay(completion, usage=usage)
            else:
                completion, usage, served_by = yield from self._call(
                    hold,
                    request.model,
                    plan.messages,
                    _bounded(request.params, cap, caller, config),
                    [b.message_index for b in plan.breakpoints],
                    head if streaming else None,
                )
        if request.check_output is not None:
            request.check_output(completion)  # a refused answer leaves no turn behind
        stored = [*new, completion.message]
        tokens = [count_message(m) for m in stored]
        budget = None
        if request.budget_tokens is not None and (meta is None or meta.budget_tokens != request.budget_tokens):
            budget = (planned.state.budget_tokens, planned.state.output_reserve)
        now = self.clock()
        last_seq = meta.last_seq if meta else 0
        first_turn = meta is None or meta.last_seq == 0
        turns = self.store.append(
            tenant,
            session_id,
            expected_last_seq=last_seq,
            messages=stored,
            tokens=tokens,
            system_prompt=planned.system_prompt if first_turn and request.instructions is None else None,
            model=request.model,
            now=now,
            pins=pins,
            budget=budget,
            lineage=meta.lineage if meta else None,
            records=request.records(completion, usage, last_seq + 1, served_by) if request.records else None,
        )
        self.engine.request_compaction_if_due(tenant, session_id, planned, sum(tokens))
        return ChatOutcome(completion, usage, served_by, session_id, turns[-1].seq, plan, lookup, hold.state)

    def _admit(self, caller: Caller, request: ChatRequest) -> ModelConfig:
        """The key's models (403), the model (404), its ``max_output_tokens`` and the budget ceiling (400)."""
        self.spend.admit_model(caller, request.model)
        config = self.router.resolve(request.model)
        self.spend.admit(
            caller,
            request.model,
            max_output_tokens=config.max_output_tokens,
            output_limit=request.params.output_limit(),
            budget_tokens=request.budget_tokens,
        )
        return config

    def plan(
        self,
        tenant: str,
        session_id: str,
        request: ChatRequest,
        new: list[Message],
        *,
        system: Message | None,
        pins: list[Pin],
    ) -> PlannedContext:
        """The context the model would see for ``new`` in this session (compacting first if it cannot fit)."""
        config = self.router.resolve(request.model)
        return self.engine.plan(
            tenant,
            session_id,
            new,
            system=system,
            new_pins=pins,
            budget_tokens=request.budget_tokens,
            max_output_tokens=request.params.output_limit(),
            min_cacheable_tokens=config.min_cacheable_tokens(),
            instructions=request.instructions,
            allow_compaction=request.allow_truncation,
        )

    def _lookup(self, tenant: str, request: ChatRequest, messages: list[Message]) -> CacheLookup | None:
        if self.cache is None:
            return None
        options = request.cache
        return self.cache.lookup(
            tenant,
            request.model,
            messages,
            request.params,
            control=options.control,
            opt_in=options.opt_in,
            threshold=options.threshold,
            allow_extended=options.allow_extended,
        )

    def _remember(
        self,
        tenant: str,
        lookup: CacheLookup | None,
        completion: Completion,
        usage: Usage,
        served_by: str,
        *,
        session_id: str | None = None,
    ) -> None:
        """``session_id``: a stateful turn's entries belong to its session (deleted with it)."""
        if self.cache is not None and lookup is not None:
            self.cache.remember(tenant, lookup, completion, usage, served_by, session_id=session_id)


def pin_content(content: str) -> str:
    """A pin's content, stripped; raises :class:`InvalidRequest` if it is empty or too long."""
    content = content.strip()
    if not content:
        raise InvalidRequest("A pin needs non-empty content.", param="content")
    if len(content) > MAX_PIN_CHARS:
        raise InvalidRequest(f"A pin is at most {MAX_PIN_CHARS} characters.", param="content")
    return content


def _split_system(messages: list[Message]) -> tuple[Message | None, list[Message]]:
    systems = [m for m in messages if m.role == "system"]
    new = [m for m in messages if m.role != "system"]
    if len(systems) > 1:
        raise InvalidRequest("A stateful request may carry at most one system message.", param="messages")
    if not new:
        raise InvalidRequest("A stateful request needs at least one non-system message.", param="messages")
    return (systems[0] if systems else None), new


def _bounded(params: GenerationParams, cap: int, caller: Caller, config: ModelConfig) -> GenerationParams:
    """The parameters sent upstream. Without a client limit on the output, the upstream is told the cap the
    reservation assumed when the key has token quotas (else the reservation would not be the worst case) or the
    model has a hard cap. The cache keys on the client's own parameters, so bounding does not split the cache."""
    if params.output_limit() is not None:
        return params
    limits = caller.limits
    if config.max_output_tokens is None and limits.tpm is None and limits.tokens_per_day is None:
        return params
    return params.model_copy(update={"max_tokens": cap})


def _usage(completion: Completion, prompt: list[Message]) -> Usage:
    if completion.usage is not None:
        return completion.usage
    return Usage(prompt_tokens=count_messages(prompt), completion_tokens=count_text(completion.message.text()))
