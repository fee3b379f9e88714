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
        """Every live entry of a scope and a matrix of their vectors, row for row (implementations may keep an
        incrementally refreshed copy in memory)."""
        ...

    def put_semantic(self, tenant: str, scope: str, entry: SemanticEntry, vector: np.ndarray) -> None: ...


class CacheMetrics(Protocol):
    def record(self, status: str, tokens_saved: int) -> None: ...
