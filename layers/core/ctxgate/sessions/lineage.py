"""Branches: a session whose history starts with another session's turns, shared rather than copied.

A branch's META carries its *lineage*, the ancestors it reads from, oldest first: ``[(A, 3), (B, 5)]`` means turns
1..3 are A's and 4..5 are B's; the branch's own turns start at 6. Turn numbers are contiguous through the
lineage, so a branch is an ordinary session for everything that counts turns (``last_seq`` versions its appends,
``evicted_through`` its compactions): it has its own pins (copied at the fork), budget, summaries and recall shards,
and nothing done to it writes into an ancestor. The lineage is flat (a fork of a branch copies the segments it
keeps), so reading a history is one query per segment, never a walk of parent pointers.

Ancestors live at least as long as their branches: a branch's append extends their expiry in the same
transaction, and deleting an ancestor deletes its branches with it (each ancestor keeps a marker per branch).
"""

from __future__ import annotations

from ctxgate.sessions.models import Segment, SessionMeta, Turn, TurnPage
from ctxgate.sessions.ports import SessionStore

MAX_LINEAGE = 16
"""Segments a branch may have (each costs one query per history read and one item per append)."""


def branch_lineage(parent: SessionMeta, through: int) -> list[Segment]:
    """The lineage of a branch of ``parent`` that shares its turns ``1..through``."""
    kept = [s for s in parent.lineage if s.through < through]
    covered = kept[-1].through if kept else 0
    owner = next((s.session_id for s in parent.lineage if s.through >= through), parent.session_id)
    if through > covered:
        kept.append(Segment(session_id=owner, through=through))
    return kept


def owner_of(meta: SessionMeta, seq: int) -> str:
    """The session that stores turn ``seq`` of ``meta``'s history."""
    return next((s.session_id for s in meta.lineage if seq <= s.through), meta.session_id)


def history(
    store: SessionStore,
    tenant: str,
    meta: SessionMeta,
    *,
    after: int = 0,
    limit: int | None = None,
    through: int | None = None,
) -> TurnPage:
    """Turns ``after < seq <= through`` (default: the newest) of ``meta``'s whole history, ancestors' included."""
    through = meta.last_seq if through is None else min(through, meta.last_seq)
    turns: list[Turn] = []
    start = 0
    for session_id, last in [*((s.session_id, s.through) for s in meta.lineage), (meta.session_id, through)]:
        low, high = max(after, start), min(last, through)
        start = last
        if high <= low:
            continue
        want = None if limit is None else limit + 1 - len(turns)
        turns.extend(store.turns(tenant, session_id, after=low, limit=want, through=high).turns)
        if limit is not None and len(turns) > limit:
            break
    if limit is not None and len(turns) > limit:
        return TurnPage(turns=turns[:limit], next_after=turns[limit - 1].seq)
    return TurnPage(turns=turns, next_after=None)
