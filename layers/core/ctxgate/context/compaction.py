"""Compaction: evict the oldest verbatim turns in one chunk, summarise them into a new epoch, index them for
recall, and move the session's eviction mark, all conditioned on the mark that was read.

The same :class:`CompactionJob` runs asynchronously (the ``compact_context`` SQS consumer) and synchronously
(when a request cannot fit before the queued compaction has landed). It is idempotent: a job for an eviction mark
the session has already moved past does nothing, so a duplicate delivery creates no second epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ctxgate.context.assemble import plan_eviction, watermarks
from ctxgate.context.loading import load_context
from ctxgate.context.models import CompactionRequest, ContextConfig, Epoch
from ctxgate.context.ports import ContextStore
from ctxgate.context.recall import build_shard
from ctxgate.context.summarize import Summarizer, make_epoch, summary_units, turn_units
from ctxgate.retry import RetryPolicy, call_with_retry
from ctxgate.sessions.ports import AppendConflict

if TYPE_CHECKING:
    from ctxgate.embeddings import Embedder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompactionResult:
    status: Literal["compacted", "noop", "gone"]
    evicted_through: int
    epoch: Epoch | None = None


class CompactionJob:
    def __init__(
        self,
        store: ContextStore,
        summarizer: Summarizer,
        config: ContextConfig,
        default_budget_tokens: int,
        *,
        embedder: Embedder | None = None,
    ) -> None:
        """``embedder`` embeds the evicted turns into their recall shard (lexical recall only when None)."""
        self.store = store
        self.summarizer = summarizer
        self.config = config
        self.default_budget_tokens = default_budget_tokens
        self.embedder = embedder

    def run(
        self,
        request: CompactionRequest,
        *,
        force: bool = False,
        keep_tokens: int | None = None,
        policy: RetryPolicy | None = None,
    ) -> CompactionResult:
        """Compact if the session is still at ``request.evicted_through`` and over its high-water mark.

        ``force`` compacts even below the high-water mark (the synchronous path); ``keep_tokens`` lowers the
        verbatim tokens kept below the low-water mark. Retries when a concurrent append races the commit.
        """
        return call_with_retry(lambda: self._once(request, force, keep_tokens), policy or RetryPolicy(max_attempts=5))

    def _once(self, request: CompactionRequest, force: bool, keep_tokens: int | None) -> CompactionResult:
        loaded = load_context(self.store, request.tenant, request.session_id, self.default_budget_tokens)
        if loaded is None:
            return CompactionResult("gone", 0)
        meta, state = loaded.meta, loaded.state
        if state.evicted_through != request.evicted_through:
            return CompactionResult("noop", state.evicted_through)  # a duplicate, or someone compacted first
        input_budget = state.budget_tokens - state.output_reserve
        _, high, low = watermarks(state, self.config, input_budget)
        recent_tokens = sum(t.tokens for t in state.recent)
        if not force and recent_tokens <= high:
            return CompactionResult("noop", state.evicted_through)
        target = low if keep_tokens is None else min(low, keep_tokens)
        cut = plan_eviction(state.recent, target)
        if cut is None:
            return CompactionResult("noop", state.evicted_through)
        chunk = [t for t in state.recent if t.seq <= cut]
        chunk_tokens = sum(t.tokens for t in chunk)
        summary_cap = int(input_budget * self.config.summary_share)
        target_summary = max(32, min(chunk_tokens // 6, summary_cap // 3))
        turns = [(t.seq, unit) for t in chunk for unit in turn_units([t.message])]
        summary, keys = self.summarizer.summarise_turns(turns, target_summary, session_model=meta.model)
        epoch = make_epoch(chunk[0].seq, cut, summary)
        key = self.store.put_shard(meta, build_shard(chunk, embedder=self.embedder, keys=keys))
        epoch = epoch.model_copy(update={"shards": [key]})
        put, delete = self._consolidate(state.epochs, epoch, summary_cap, meta.model)
        try:
            self.store.commit_compaction(
                request.tenant,
                request.session_id,
                expected_evicted_through=state.evicted_through,
                evicted_through=cut,
                put=put,
                delete=delete,
            )
        except AppendConflict:
            # Refused: another compaction won, or the session was deleted meanwhile. The shard would be an orphan
            # (and a deleted session's text), so it goes now; a retry writes its own.
            self.store.discard_shard(key)
            raise
        logger.info("compacted", extra={"session": request.session_id, "through": cut, "epochs_written": len(put)})
        return CompactionResult("compacted", cut, epoch)

    def _consolidate(
        self, epochs: list[Epoch], new: Epoch, cap: int, model: str | None
    ) -> tuple[list[Epoch], list[Epoch]]:
        """Keep the summary section under ``cap``. Returns (epochs to put, epochs to delete).

        Below the cap the new epoch is simply appended. Above it, the oldest epochs are folded into one
        re-summarised epoch (a prefix change, but this is a compaction anyway); if even that is not enough the
        new epoch is folded in too.
        """
        if sum(e.tokens for e in epochs) + new.tokens <= cap or not epochs:
            return [new], []
        target = max(32, cap // 3)
        for fold in range(1, len(epochs) + 1):
            if target + sum(e.tokens for e in epochs[fold:]) + new.tokens <= cap:
                return [self._fold(epochs[:fold], target, model), new], epochs[:fold]
        return [self._fold([*epochs, new], target, model)], epochs

    def _fold(self, epochs: list[Epoch], target: int, model: str | None) -> Epoch:
        units = summary_units([e.summary for e in epochs])
        summary = self.summarizer.summarise(units, target, session_model=model)
        folded = make_epoch(epochs[0].first_seq, epochs[-1].last_seq, summary)
        return folded.model_copy(update={"shards": [k for e in epochs for k in e.shards]})
