"""The chat turn: load the session, call the model, and append the new turns atomically.

This is the domain service behind ``POST /v1/chat/completions``. It knows nothing of HTTP or DynamoDB.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ctxgate.errors import InvalidRequest, SessionConflict
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.providers.registry import ModelRouter
from ctxgate.sessions.models import SessionMeta, TurnPage, validate_session_id
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
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.router = router
        self.ttl_seconds = ttl_seconds
        self.conflict_retries = conflict_retries
        self.clock = clock
        self.sleep = sleep

    def stateless(self, request: ChatRequest) -> ChatOutcome:
        """Forward the request as it is; nothing is stored."""
        completion, config = self.router.complete(request.model, request.messages, request.params)
        return ChatOutcome(completion, _usage(completion, request.messages), config.name)

    def stateful(self, tenant: str, session_id: str, request: ChatRequest) -> ChatOutcome:
        """Serve one turn of a session whose client sends only the new messages.

        On a lost race for the session's next sequence number the whole turn is retried (fresh history, fresh
        model call), a bounded number of times, then :class:`SessionConflict` (409). Nothing is stored unless the
        model call succeeded.
        """
        validate_session_id(session_id)
        system, new = _split_system(request.messages)
        self.router.resolve(request.model)  # an unknown model is a 404 before any read
        for attempt in range(self.conflict_retries + 1):
            meta = self.store.get(tenant, session_id)
            system_prompt = _system_prompt(meta, system)
            history = self.store.turns(tenant, session_id).turns if meta else []
            prompt = [Message(role="system", content=system_prompt)] if system_prompt else []
            prompt += [turn.message for turn in history] + new
            completion, config = self.router.complete(request.model, prompt, request.params)
            reply = completion.message
            stored = [*new, reply]
            now = self.clock()
            try:
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
            except AppendConflict:
                self.sleep(random.uniform(0.0, min(1.0, 0.02 * 2**attempt)))
                continue
            if meta is not None and meta.expires_at - now < self.ttl_seconds / 2:
                self.store.refresh_expiry(tenant, session_id, int(now) + self.ttl_seconds)
            return ChatOutcome(completion, _usage(completion, prompt), config.name, session_id, turns[-1].seq)
        raise SessionConflict(f"Session {session_id} kept changing under concurrent requests; retry the request.")

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
