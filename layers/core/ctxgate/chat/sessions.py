"""Session management beside the chat turn: read a session's history, delete it, manage its pins, and show the
context plan its next request would use."""

from __future__ import annotations

import time
from collections.abc import Callable

from ctxgate.chat.service import pin_content
from ctxgate.context.assemble import ContextState, assemble_context, default_output_reserve
from ctxgate.context.engine import ContextEngine, new_pin
from ctxgate.context.models import ContextPlan
from ctxgate.context.ports import ContextStore
from ctxgate.errors import NotFound
from ctxgate.messages import Message
from ctxgate.providers.registry import ModelRouter
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.lineage import history
from ctxgate.sessions.models import Pin, SessionPage, validate_session_id


class SessionService:
    def __init__(
        self,
        store: ContextStore,
        engine: ContextEngine,
        router: ModelRouter,
        *,
        conflict_policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.engine = engine
        self.router = router
        self.conflict_policy = conflict_policy
        self.clock = clock
        self.sleep = sleep

    def page(self, tenant: str, session_id: str, *, after: int, limit: int) -> SessionPage | None:
        """The session's metadata and up to ``limit`` turns after ``after`` (a branch's shared turns included); None
        if it does not exist."""
        validate_session_id(session_id)
        meta = self.store.get(tenant, session_id)
        if meta is None:
            return None
        return SessionPage(meta=meta, turns=history(self.store, tenant, meta, after=after, limit=limit))

    def delete(self, tenant: str, session_id: str) -> bool:
        validate_session_id(session_id)
        return self.store.delete(tenant, session_id)

    def inspect(
        self, tenant: str, session_id: str, message: str, model: str | None = None, *, must_exist: bool = True
    ) -> ContextPlan:
        """The plan the next request with ``message`` would use. Stores nothing, but runs the synchronous
        compaction that request would run if the history no longer fits. With ``must_exist`` False, a session
        that does not exist yet is planned as a new one."""
        validate_session_id(session_id)
        config = self.router.resolve(model or self.router.names()[0])
        if must_exist and self.store.get(tenant, session_id) is None:
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        new = [Message(role="user", content=message)] if message else []
        return call_with_retry(
            lambda: self.engine.plan(tenant, session_id, new, min_cacheable_tokens=config.min_cacheable_tokens()).plan,
            self.conflict_policy,
            sleep=self.sleep,
        )

    def add_pin(self, tenant: str, session_id: str, content: str) -> Pin:
        """Pin a constraint, creating the session if needed. Refuses a pin that would leave no room for a system
        prompt and a short message within the session's budget."""
        validate_session_id(session_id)
        pin = new_pin(pin_content(content), self.clock())
        stored = self.store.context(tenant, session_id)
        if stored is not None:
            meta = stored.meta
            budget = meta.budget_tokens or self.engine.default_budget_tokens
            state = ContextState(
                meta.system_prompt,
                [*stored.pins, pin],
                [],
                [],
                0,
                budget,
                meta.output_reserve or default_output_reserve(budget),
            )
            assemble_context(state, [Message(role="user", content="?")], self.engine.config)
        self.store.add_pin(tenant, session_id, pin, now=pin.created_at)
        return pin

    def pins(self, tenant: str, session_id: str) -> list[Pin]:
        validate_session_id(session_id)
        stored = self.store.context(tenant, session_id)
        if stored is None:
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        return stored.pins

    def delete_pin(self, tenant: str, session_id: str, pin_id: str) -> bool:
        validate_session_id(session_id)
        return self.store.delete_pin(tenant, session_id, pin_id)
