"""Cache records and results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ctxgate.messages import Completion, Usage

CacheStatus = Literal["hit-exact", "hit-semantic", "miss", "bypass"]


class CachedResponse(BaseModel):
    completion: Completion
    usage: Usage
    served_by: str
    """The model that produced the answer. Only answers of the requested model itself are stored, and a
    response whose ``served_by`` is not the requested model is never served (a fallback's answer is not the
    primary's)."""
    created_at: float


class SemanticEntry(BaseModel):
    """A stored prompt of one semantic scope (tenant + model + context fingerprint + embedder): what a lookup
    compares, without the response (which is fetched only on a hit)."""

    id: str
    prompt: str
    answer_id: str
    served_by: str
    created_at: float
    expires_at: int


@dataclass(frozen=True)
class SemanticIndex:
    """The live entries of one semantic scope and their vectors: ``vectors[i]`` (a float32 matrix row) is the
    embedding of ``entries[i].prompt``. It holds no responses: :meth:`CacheStore.semantic_response` fetches the
    one a hit serves."""

    entries: list[SemanticEntry]
    vectors: Any
