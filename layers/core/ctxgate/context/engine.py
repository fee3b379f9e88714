"""The context engine as the chat path and the handlers use it: load a session's context consistently, plan a
request under budget (compacting synchronously when the queued compaction has not landed), and ask for an
asynchronous compaction once the verbatim history crosses its high-water mark."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ctxgate.context.assemble import (
    ContextBudgetExceeded,
    ContextState,
    NeedsCompaction,
    assemble_context,
    default_output_reserve,
    fixed_tokens,
    watermarks,
)
from ctxgate.context.compaction import CompactionJob
from ctxgate.context.loading import LoadedContext, load_context
from ctxgate.context.models import CompactionRequest, ContextConfig, ContextPlan, Pin
from ctxgate.context.ports import CompactionQueue, ContextStore
from ctxgate.context.ranking import Ranker, Reranker
from ctxgate.context.summarize import Summarizer
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message
from ctxgate.sessions.models import SessionMeta
from ctxgate.tokens import count_message, count_text

if TYPE_CHECKING:
    from ctxgate.embeddings import Embedder

logger = logging.getLogger(__name__)
MIN_BUDGET_TOKENS = 256
MAX_BUDGET_TOKENS = 2_000_000


@dataclass(frozen=True)
class PlannedContext:
    """The plan of one request, and what it was planned from (the commit needs the version it read)."""

    meta: SessionMeta | None
    state: ContextState
    plan: ContextPlan
    system_prompt: str | None


def new_pin(content: str, now: float) -> Pin:
    # Time-ordered ids, so pins list in creation order from a sort-key range.
    pin_id = f"pin_{int(now * 1000):013d}{uuid.uuid4().hex[:8]}"
    return Pin(id=pin_id, content=content, tokens=count_text(content) + 2, created_at=now)  # + "N. " and newline


def validate_budget(budget_tokens: int) -> int:
    if not MIN_BUDGET_TOKENS <= budget_tokens <= MAX_BUDGET_TOKENS:
        raise InvalidRequest(
            f"budget_tokens must be between {MIN_BUDGET_TOKENS} and {MAX_BUDGET_TOKENS}.", code="invalid_budget"
        )
    return budget_tokens


class ContextEngine:
    def __init__(
        self,
        store: ContextStore,
        config: ContextConfig,
        *,
        summarizer: Summarizer,
        default_budget_tokens: int,
        queue: CompactionQueue | None = None,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``embedder`` embeds evicted turns at compaction and messages at recall (lexical recall only when None);
        ``reranker`` reorders the best candidates; ``clock`` is the time of a new message (named periods such as
        "last month" are resolved against it)."""
        self.store = store
        self.config = config
        self.default_budget_tokens = default_budget_tokens
        self.queue = queue
        self.embedder = embedder
        self.ranker = Ranker(embedder, reranker, config.rerank_candidates)
        self.clock = clock
        self.compactor = CompactionJob(store, summarizer, config, default_budget_tokens, embedder=embedder)

    def load(self, tenant: str, session_id: str) -> LoadedContext | None:
        """The session's stored context (see :func:`load_context`), or None if it does not exist."""
        return load_context(self.store, tenant, session_id, self.default_budget_tokens)

    def plan(
        self,
        tenant: str,
        session_id: str,
        new: list[Message],
        *,
        system: Message | None = None,
        new_pins: list[Pin] | None = None,
        budget_tokens: int | None = None,
        max_output_tokens: int | None = None,
        min_cacheable_tokens: int = 1024,
        instructions: str | None = None,
        allow_compaction: bool = True,
    ) -> PlannedContext:
        """Load the session and plan the request, compacting synchronously if the history cannot fit.

        ``instructions`` replace the session's system prompt for this plan only; without ``allow_compaction`` a
        history that cannot fit raises :class:`ContextBudgetExceeded` (nothing is compacted)."""
        for _ in range(3):
            loaded = self.load(tenant, session_id)
            meta = loaded.meta if loaded else None
            system_prompt = instructions if instructions is not None else _system_prompt(meta, system)
            if loaded is None:
                budget = budget_tokens or self.default_budget_tokens
                state = ContextState(system_prompt, [], [], [], 0, budget, default_output_reserve(budget))
            else:
                state = loaded.state
                if budget_tokens is not None and budget_tokens != state.budget_tokens:
                    state = replace(
                        state, budget_tokens=budget_tokens, output_reserve=default_output_reserve(budget_tokens)
                    )
            state = replace(state, system_prompt=system_prompt, pins=[*state.pins, *(new_pins or [])])
            try:
                plan = assemble_context(
                    state,
                    new,
                    self.config,
                    ranker=self.ranker,
                    now=self.clock(),
                    max_output_tokens=max_output_tokens,
                    min_cacheable_tokens=min_cacheable_tokens,
                )
                return PlannedContext(meta, state, plan, system_prompt)
            except NeedsCompaction:
                if not allow_compaction:
                    raise ContextBudgetExceeded("The conversation does not fit the context budget.") from None
                # The queued compaction has not landed (or the budget shrank): compact now rather than overflow.
                new_tokens = sum(count_message(m) for m in new) + 3
                reserve = max(state.output_reserve, max_output_tokens or 0)
                keep = state.budget_tokens - reserve - new_tokens - fixed_tokens(state)
                self.compactor.run(
                    CompactionRequest(tenant=tenant, session_id=session_id, evicted_through=state.evicted_through),
                    force=True,
                    keep_tokens=max(0, keep),
                )
        raise ContextBudgetExceeded("The session's history could not be compacted into its budget.")

    def compaction_due(self, tenant: str, session_id: str) -> CompactionRequest | None:
        """The compaction job a session needs now (verbatim history over its high-water mark), or None."""
        loaded = self.load(tenant, session_id)
        if loaded is None:
            return None
        state = loaded.state
        _, high, _ = watermarks(state, self.config, state.budget_tokens - state.output_reserve)
        if sum(t.tokens for t in state.recent) <= high:
            return None
        return CompactionRequest(tenant=tenant, session_id=session_id, evicted_through=state.evicted_through)

    def request_compaction_if_due(
        self, tenant: str, session_id: str, planned: PlannedContext, appended_tokens: int
    ) -> bool:
        """Queue a compaction when the verbatim history is now over its high-water mark. Returns whether it did.

        Every turn over the mark queues one until a compaction lands; the consumer ignores the duplicates."""
        recent = sum(t.tokens for t in planned.state.recent) + appended_tokens
        if self.queue is None or recent <= planned.plan.budget.high_water:
            return False
        self.queue.request(
            CompactionRequest(tenant=tenant, session_id=session_id, evicted_through=planned.state.evicted_through)
        )
        return True


def _system_prompt(meta: SessionMeta | None, system: Message | None) -> str | None:
    """A session's system prompt is set by its first request; later ones may repeat it but not change it."""
    if meta is None or (meta.last_seq == 0 and meta.system_prompt is None):
        return system.text() if system else None
    if system is not None and system.text() != (meta.system_prompt or ""):
        raise InvalidRequest(
            "This session already has a different system prompt; start a new session to change it.",
            code="system_prompt_conflict",
            param="messages",
        )
    return meta.system_prompt
