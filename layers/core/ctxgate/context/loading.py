"""Loading a session's context state consistently, for planning and for compaction alike."""

from __future__ import annotations

from dataclasses import dataclass

from ctxgate.context.assemble import ContextState, default_output_reserve
from ctxgate.context.ports import ContextStore
from ctxgate.sessions.lineage import history
from ctxgate.sessions.models import SessionMeta
from ctxgate.sessions.ports import AppendConflict


@dataclass(frozen=True)
class LoadedContext:
    meta: SessionMeta
    state: ContextState


def load_context(store: ContextStore, tenant: str, session_id: str, default_budget_tokens: int) -> LoadedContext | None:
    """The session's stored context, consistent with one version of its META, or None if it does not exist.

    Reads are not atomic with each other, so a version whose epochs or turns are not all visible yet raises
    :class:`AppendConflict` (the caller retries).
    """
    stored = store.context(tenant, session_id)
    if stored is None:
        return None
    meta, epochs = stored.meta, stored.epochs
    covered = 0
    for epoch in epochs:
        if epoch.first_seq != covered + 1:
            raise AppendConflict(f"session {session_id}: summaries not yet consistent")
        covered = epoch.last_seq
    if covered != meta.evicted_through:
        raise AppendConflict(f"session {session_id}: summaries not yet consistent with the eviction mark")
    page = history(store, tenant, meta, after=meta.evicted_through)
    recent = [t for t in page.turns if t.seq <= meta.last_seq]
    if len(recent) != meta.last_seq - meta.evicted_through:
        raise AppendConflict(f"session {session_id}: history not yet consistent with seq {meta.last_seq}")
    recent = [t for t in recent if not t.deleted]
    budget = meta.budget_tokens or default_budget_tokens
    state = ContextState(
        system_prompt=meta.system_prompt,
        pins=stored.pins,
        epochs=epochs,
        recent=recent,
        evicted_through=meta.evicted_through,
        budget_tokens=budget,
        output_reserve=meta.output_reserve or default_output_reserve(budget),
        load_shards=lambda: [store.get_shard(key) for epoch in epochs for key in epoch.shards],
    )
    return LoadedContext(meta, state)
