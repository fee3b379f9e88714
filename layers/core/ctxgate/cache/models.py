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
    created_at: float


class SemanticEntry(BaseModel):
    """A stored prompt of one semantic scope (tenant + model + context fingerprint + embedder)."""

    id: str
    prompt: str
    answer_id: str
    response: CachedResponse
    expires_at: int


@dataclass(frozen=True)
class SemanticIndex:
    """The live entries of one semantic scope and their vectors: ``vectors[i]`` (a float32 matrix row) is the
    embedding of ``entries[i].prompt``."""

    entries: list[SemanticEntry]
    vectors: Any
