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

    def put_exact(self, tenant: str, key: str, response: CachedResponse, *, expires_at: int) -> None: ...

    def semantic_index(self, tenant: str, scope: str) -> SemanticIndex:
        """The live entries of a scope (vectors, ids and prompts; no responses) and a matrix of their vectors, row
        for row. Implementations may keep an incrementally refreshed copy in memory, bounded like the scope."""
        ...

    def semantic_response(self, tenant: str, scope: str, entry: SemanticEntry) -> CachedResponse | None:
        """The response of an entry a lookup chose, recording the use (the scope evicts least recently used
        entries first). None if the entry was evicted or expired meanwhile."""
        ...

    def put_semantic(
        self, tenant: str, scope: str, entry: SemanticEntry, response: CachedResponse, vector: np.ndarray
    ) -> None:
        """Store an entry; then, while the scope holds more than its bound, evict its least recently used entries
        (from the store itself, not only from memory)."""
        ...


class CacheMetrics(Protocol):
    def record(self, status: str, tokens_saved: int) -> None: ...
