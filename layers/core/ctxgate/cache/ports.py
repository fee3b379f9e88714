"""Ports of the response cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ctxgate.cache.models import CachedResponse, SemanticEntry, SemanticIndex

if TYPE_CHECKING:
    import numpy as np


class CacheStore(Protocol):
    def get_exact(self, tenant: str, key: str) -> CachedResponse | None:
        """A live entry (expired ones count as absent)."""
        ...

    def put_exact(
        self, tenant: str, key: str, response: CachedResponse, *, expires_at: int, session_id: str | None = None
    ) -> bool:
        """Store an entry. With ``session_id`` (a stateful turn's entry) it joins that session's index, and only
        while the session exists and is not being deleted; returns False when refused so."""
        ...

    def semantic_index(self, tenant: str, scope: str) -> SemanticIndex:
        """The live entries of a scope (vectors, ids and prompts; no responses) and a matrix of their vectors, row
        for row. Implementations may keep an incrementally refreshed copy in memory, bounded like the scope."""
        ...

    def semantic_response(self, tenant: str, scope: str, entry: SemanticEntry) -> CachedResponse | None:
        """The response of an entry a lookup chose, recording the use (the scope evicts least recently used
        entries first). None if the entry was evicted or expired meanwhile."""
        ...

    def put_semantic(
        self,
        tenant: str,
        scope: str,
        entry: SemanticEntry,
        response: CachedResponse,
        vector: np.ndarray,
        *,
        session_id: str | None = None,
    ) -> bool:
        """Store an entry (joining ``session_id``'s index like :meth:`put_exact`; False when refused); then, while
        the scope holds more than its bound, evict its least recently used entries (from the store itself, not only
        from memory)."""
        ...

    def forget_session(self, tenant: str, session_id: str) -> int:
        """Delete every entry in the session's index, with its offloaded body and any in-memory copy this process
        holds; idempotent. Returns how many entries went."""
        ...


class CacheMetrics(Protocol):
    def record(self, status: str, tokens_saved: int) -> None: ...
