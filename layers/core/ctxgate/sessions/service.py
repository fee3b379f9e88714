"""The chat turn: plan the context, call the model, and append the new turns atomically.

This is the domain service behind ``POST /v1/chat/completions`` and the session routes. It knows nothing of
HTTP or DynamoDB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ctxgate.cache.keys import CacheControl
from ctxgate.cache.service import CacheLookup, ResponseCache
from ctxgate.context.assemble import ContextState, assemble_context, default_output_reserve
from ctxgate.context.engine import ContextEngine, Prepared, new_pin, validate_budget
from ctxgate.context.models import ContextPlan, Pin
from ctxgate.context.ports import ContextStore
from ctxgate.errors import InvalidRequest, NotFound, SessionConflict
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.providers.registry import ModelRouter
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.models import SessionMeta, TurnPage, validate_session_id
from ctxgate.sessions.ports import AppendConflict
from ctxgate.tokens import count_message, count_messages, count_text

MAX_PIN_CHARS = 8000


@dataclass(frozen=True)
class CacheOptions:
    control: CacheControl = field(default_factory=CacheControl)
    opt_in: bool = False
    """Cache a non-deterministic request too."""
    threshold: float | None = None
    """A stricter semantic threshold for this request."""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    params: GenerationParams
    pins: list[str] = field(default_factory=list)
    """Contents of the new messages the client marked ``"pin": true``."""
    budget_tokens: int | None = None
    cache: CacheOptions = field(default_factory=CacheOptions)


@dataclass(frozen=True)
class ChatOutcome:
    completion: Completion
    usage: Usage
    served_by: str
    session_id: str | None = None
    turn: int | None = None
    """Sequence number of the stored reply, for stateful requests."""
    plan: ContextPlan | None = None
    cache: CacheLookup | None = None


class ChatService:
    def __init__(
        self,
        store: ContextStore,
        router: ModelRouter,
        engine: ContextEngine,
        *,
        cache: ResponseCache | None = None,
        ttl_seconds: int,
        conflict_retries: int,
        conflict_deadline: float = 20.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.router = router
        self.engine = engine
        self.cache = cache
        self.ttl_seconds = ttl_seconds
        # Conflicts resolve in milliseconds (someone else just wrote), so back off briefly but try often.
        self.conflict_policy = RetryPolicy(
            max_attempts=conflict_retries + 1, base_delay=0.05, max_delay=2.0, deadline=conflict_deadline
        )
        self.clock = clock
        self.sleep = sleep

    def stateless(self, tenant: str, request: ChatRequest) -> ChatOutcome:
        """Forward the request as it is; no session is kept (the response may be cached)."""
        self.router.resolve(request.model)
        lookup = self._lookup(tenant, request, request.messages)
        if lookup is not None and lookup.response is not None:
            cached = lookup.response
            return ChatOutcome(cached.completion, cached.usage, cached.served_by, cache=lookup)
        completion, config = self.router.complete(request.model, request.messages, request.params)
        usage = _usage(completion, request.messages)
        self._remember(tenant, lookup, completion, usage, config.name)
        return ChatOutcome(completion, usage, config.name, cache=lookup)

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
        )

    def _remember(
        self, tenant: str, lookup: CacheLookup | None, completion: Completion, usage: Usage, served_by: str
    ) -> None:
        if self.cache is not None and lookup is not None:
            self.cache.remember(tenant, lookup, completion, usage, served_by)

    def stateful(self, tenant: str, session_id: str, request: ChatRequest) -> ChatOutcome:
        """Serve one turn of a session whose client sends only the new messages.

        On a lost race for the session's next sequence number the whole turn is retried (fresh context, fresh
        model call) with the project's retry helper, then :class:`SessionConflict` (409). Nothing is stored
        unless the model call succeeded.
        """
        validate_session_id(session_id)
        system, new = _split_system(request.messages)
        if request.budget_tokens is not None:
            validate_budget(request.budget_tokens)
        self.router.resolve(request.model)  # an unknown model is a 404 before any read
        try:
            return call_with_retry(
                lambda: self._turn(tenant, session_id, request, system, new), self.conflict_policy, sleep=self.sleep
            )
        except AppendConflict:
            raise SessionConflict(
                f"Session {session_id} kept changing under concurrent requests; retry the request."
            ) from None

    def _turn(
        self, tenant: str, session_id: str, request: ChatRequest, system: Message | None, new: list[Message]
    ) -> ChatOutcome:
        now = self.clock()
        pins = [new_pin(_pin_content(c), now) for c in request.pins]
        prepared = self._prepare(tenant, session_id, request, new, system=system, pins=pins)
        plan = prepared.plan
        lookup = self._lookup(tenant, request, plan.messages)
        if lookup is not None and lookup.response is not None:
            # A hit still becomes the session's next turn, so the conversation continues correctly.
            completion, usage, served_by = lookup.response.completion, lookup.response.usage, lookup.response.served_by
        else:
            completion, config = self.router.complete(
                request.model, plan.messages, request.params, cache_points=[b.message_index for b in plan.breakpoints]
            )
            usage, served_by = _usage(completion, plan.messages), config.name
        stored = [*new, completion.message]
        tokens = [count_message(m) for m in stored]
        meta = prepared.meta
        budget = None
        if request.budget_tokens is not None and (meta is None or meta.budget_tokens != request.budget_tokens):
            budget = (prepared.state.budget_tokens, prepared.state.output_reserve)
        now = self.clock()
        turns = self.store.append(
            tenant,
            session_id,
            expected_last_seq=meta.last_seq if meta else 0,
            messages=stored,
            tokens=tokens,
            system_prompt=prepared.system_prompt if meta is None or meta.last_seq == 0 else None,
            model=request.model,
            now=now,
            pins=pins,
            budget=budget,
        )
        if meta is not None and meta.expires_at - now < self.ttl_seconds / 2:
            self.store.refresh_expiry(tenant, session_id, int(now) + self.ttl_seconds)
        self.engine.after_append(tenant, session_id, prepared, sum(tokens))
        if lookup is not None and lookup.response is None:
            self._remember(tenant, lookup, completion, usage, served_by)
        return ChatOutcome(completion, usage, served_by, session_id, turns[-1].seq, plan, lookup)

    def _prepare(
        self,
        tenant: str,
        session_id: str,
        request: ChatRequest,
        new: list[Message],
        *,
        system: Message | None,
        pins: list[Pin],
    ) -> Prepared:
        config = self.router.resolve(request.model)
        return self.engine.prepare(
            tenant,
            session_id,
            new,
            system=system,
            new_pins=pins,
            budget_tokens=request.budget_tokens,
            max_output_tokens=request.params.output_limit(),
            min_cacheable_tokens=config.min_cacheable_tokens(),
        )

    def inspect(
        self, tenant: str, session_id: str, message: str, model: str | None = None, *, must_exist: bool = True
    ) -> ContextPlan:
        """The plan the next request with ``message`` would use. Stores nothing, but runs the synchronous
        compaction that request would run if the history no longer fits. With ``must_exist`` False, a session
        that does not exist yet is planned as a new one."""
        validate_session_id(session_id)
        if must_exist and self.store.get(tenant, session_id) is None:
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        name = model or self.router.names()[0]
        request = ChatRequest(model=name, messages=[], params=GenerationParams())
        new = [Message(role="user", content=message)] if message else []
        return call_with_retry(
            lambda: self._prepare(tenant, session_id, request, new, system=None, pins=[]).plan,
            self.conflict_policy,
            sleep=self.sleep,
        )

    def session(self, tenant: str, session_id: str, *, after: int, limit: int) -> tuple[SessionMeta, TurnPage] | None:
        validate_session_id(session_id)
        meta = self.store.get(tenant, session_id)
        if meta is None:
            return None
        return meta, self.store.turns(tenant, session_id, after=after, limit=limit)

    def delete(self, tenant: str, session_id: str) -> bool:
        validate_session_id(session_id)
        return self.store.delete(tenant, session_id)

    # -- pins --------------------------------------------------------------------------------------------------

    def add_pin(self, tenant: str, session_id: str, content: str) -> Pin:
        validate_session_id(session_id)
        pin = new_pin(_pin_content(content), self.clock())
        loaded = self.store.context(tenant, session_id)
        if loaded is not None:
            meta, pins, _ = loaded
            budget = meta.budget_tokens or self.engine.default_budget_tokens
            # The pins must still leave room for a system prompt and a short message; refuse one that would not.
            probe = Message(role="user", content="?")
            state = ContextState(
                meta.system_prompt,
                [*pins, pin],
                [],
                [],
                0,
                budget,
                meta.output_reserve or default_output_reserve(budget),
            )
            assemble_context(state, [probe], self.engine.config)
        self.store.add_pin(tenant, session_id, pin, now=pin.created_at)
        return pin

    def pins(self, tenant: str, session_id: str) -> list[Pin]:
        validate_session_id(session_id)
        loaded = self.store.context(tenant, session_id)
        if loaded is None:
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        return loaded[1]

    def delete_pin(self, tenant: str, session_id: str, pin_id: str) -> bool:
        validate_session_id(session_id)
        return self.store.delete_pin(tenant, session_id, pin_id)


def _pin_content(content: str) -> str:
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


def _usage(completion: Completion, prompt: list[Message]) -> Usage:
    if completion.usage is not None:
        return completion.usage
    return Usage(prompt_tokens=count_messages(prompt), completion_tokens=count_text(completion.message.text()))
