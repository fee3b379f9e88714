"""The chat turn: load the session, call the model, and append the new turns atomically.

This is the domain service behind ``POST /v1/chat/completions``. It knows nothing of HTTP or DynamoDB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ctxgate.errors import InvalidRequest, SessionConflict
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.providers.registry import ModelRouter
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.models import SessionMeta, Turn, TurnPage, validate_session_id
from ctxgate.sessions.ports import AppendConflict, SessionStore
from ctxgate.tokens import count_message, count_messages


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    params: GenerationParams


@dataclass(frozen=True)
class ChatOutcome:
    completion: Completion
    usage: Usage
    served_by: str
    session_id: str | None = None
    turn: int | None = None
    """Sequence number of the stored reply, for stateful requests."""


class ChatService:
    def __init__(
        self,
        store: SessionStore,
        router: ModelRouter,
        *,
        ttl_seconds: int,
        conflict_retries: int,
        conflict_deadline: float = 20.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.router = router
        self.ttl_seconds = ttl_seconds
        # Conflicts resolve in milliseconds (someone else just wrote), so back off briefly but try often.
        self.conflict_policy = RetryPolicy(
            max_attempts=conflict_retries + 1, base_delay=0.05, max_delay=2.0, deadline=conflict_deadline
        )
        self.clock = clock
        self.sleep = sleep

    def stateless(self, request: ChatRequest) -> ChatOutcome:
        """Forward the request as it is; nothing is stored."""
        completion, config = self.router.complete(request.model, request.messages, request.params)
        return ChatOutcome(completion, _usage(completion, request.messages), config.name)

    def stateful(self, tenant: str, session_id: str, request: ChatRequest) -> ChatOutcome:
        """Serve one turn of a session whose client sends only the new messages.

        On a lost race for the session's next sequence number the whole turn is retried (fresh history, fresh
        model call) with the project's retry helper, then :class:`SessionConflict` (409). Nothing is stored
        unless the model call succeeded.
        """
        validate_session_id(session_id)
        system, new = _split_system(request.messages)
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
        meta = self.store.get(tenant, session_id)
        system_prompt = _system_prompt(meta, system)
        history = self._history(tenant, session_id, meta)
        prompt = [Message(role="system", content=system_prompt)] if system_prompt else []
        prompt += [turn.message for turn in history] + new
        completion, config = self.router.complete(request.model, prompt, request.params)
        stored = [*new, completion.message]
        now = self.clock()
        turns = self.store.append(
            tenant,
            session_id,
            expected_last_seq=meta.last_seq if meta else 0,
            messages=stored,
            tokens=[count_message(m) for m in stored],
            system_prompt=system_prompt if meta is None else None,
            model=request.model,
            now=now,
        )
        if meta is not None and meta.expires_at - now < self.ttl_seconds / 2:
            self.store.refresh_expiry(tenant, session_id, int(now) + self.ttl_seconds)
        return ChatOutcome(completion, _usage(completion, prompt), config.name, session_id, turns[-1].seq)

    def _history(self, tenant: str, session_id: str, meta: SessionMeta | None) -> list[Turn]:
        """Exactly the turns up to the version read. A query is not atomic with the META read, so it can see a
        newer writer's turns (dropped here) or, mid-transaction, miss some (a conflict: retry the turn)."""
        if meta is None:
            return []
        history = [t for t in self.store.turns(tenant, session_id).turns if t.seq <= meta.last_seq]
        if len(history) != meta.last_seq:
            raise AppendConflict(f"session {session_id} history is not yet consistent with seq {meta.last_seq}")
        return history

    def session(self, tenant: str, session_id: str, *, after: int, limit: int) -> tuple[SessionMeta, TurnPage] | None:
        validate_session_id(session_id)
        meta = self.store.get(tenant, session_id)
        if meta is None:
            return None
        return meta, self.store.turns(tenant, session_id, after=after, limit=limit)

    def delete(self, tenant: str, session_id: str) -> bool:
        validate_session_id(session_id)
        return self.store.delete(tenant, session_id)


def _split_system(messages: list[Message]) -> tuple[Message | None, list[Message]]:
    systems = [m for m in messages if m.role == "system"]
    new = [m for m in messages if m.role != "system"]
    if len(systems) > 1:
        raise InvalidRequest("A stateful request may carry at most one system message.", param="messages")
    if not new:
        raise InvalidRequest("A stateful request needs at least one non-system message.", param="messages")
    return (systems[0] if systems else None), new


def _system_prompt(meta: SessionMeta | None, system: Message | None) -> str | None:
    """A session's system prompt is set by its first request; later ones may repeat it but not change it."""
    if meta is None:
        return system.text() if system else None
    if system is not None and system.text() != (meta.system_prompt or ""):
        raise InvalidRequest(
            "This session already has a different system prompt; start a new session to change it.",
            code="system_prompt_conflict",
            param="messages",
        )
    return meta.system_prompt


def _usage(completion: Completion, prompt: list[Message]) -> Usage:
    if completion.usage is not None:
        return completion.usage
    from ctxgate.tokens import count_text

    return Usage(prompt_tokens=count_messages(prompt), completion_tokens=count_text(completion.message.text()))
