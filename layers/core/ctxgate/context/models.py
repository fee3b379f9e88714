"""Records and results of the context engine."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ctxgate.messages import Message
from ctxgate.sessions.models import Pin, SessionMeta

DEFAULT_BUDGET_TOKENS = 8192


class Epoch(BaseModel):
    """A summary of the contiguous evicted turns ``first_seq..last_seq``."""

    first_seq: int
    last_seq: int
    summary: str
    tokens: int
    """Tokens of the rendered summary message."""
    shards: list[str] = Field(default_factory=list)
    """Keys of the recall shards indexing the turns this epoch covers."""


class RecallDoc(BaseModel):
    """One evicted turn as the recall index holds it: enough to score it and to render it verbatim."""

    seq: int
    role: str
    name: str | None = None
    text: str
    tokens: int
    terms: dict[str, int]
    """Stemmed content words of the turn itself (neighbour and time terms are added when a session is indexed)."""
    created_at: float = 0.0
    """When the turn was stored (epoch seconds); 0 for shards written before turns carried their time."""
    keys: list[str] = Field(default_factory=list)
    """Search keys a summariser model wrote for the turn (entities, topics, dates); indexed with its words."""
    embedding: str | None = None
    """The turn's sentence embedding ("name: text"), L2-normalised, as base64 of little-endian float16."""


class RecallShard(BaseModel):
    """The recall index of one evicted chunk. Immutable once written."""

    first_seq: int
    last_seq: int
    docs: list[RecallDoc]
    embedder: str | None = None
    """Name of the model that wrote the docs' embeddings; vectors of another model are never compared."""


class ContextConfig(BaseModel):
    """Shares are fractions of the input budget (``budget_tokens - output_reserve``)."""

    recall_share: float = Field(default=0.35, ge=0, le=0.8)
    summary_share: float = Field(default=0.08, ge=0.02, le=0.5)
    high_water: float = Field(default=0.9, gt=0, le=1)
    low_water: float = Field(default=0.3, gt=0, lt=1)
    recall_min_relevance: float = Field(default=2.0, ge=0)
    """The recall gate for a statement: it recalls only if its best-matching evicted turn reaches this relevance
    (``ranking``: BM25 normalised by the message's total IDF). It keeps small talk from filling the context."""
    recall_min_relevance_question: float = Field(default=0.9, ge=0)
    """The same gate for a message that asks something (``recall.is_question``): questions are when earlier turns
    are needed, so they may recall more loosely."""
    question_borrows_verbatim: bool = True
    """A question may use the verbatim window's unused room for recall, beyond ``recall_share``."""
    sticky_recall: bool = False
    """Keep each message's recalled turns in the transcript, right before that message, until the next compaction,
    so they become part of the cached prefix instead of a block rebuilt every turn."""
    rerank_model: str | None = None
    """A Bedrock re-ranking model (e.g. ``cohere.rerank-v3-5:0``) that reorders the best candidates; off if None."""
    rerank_candidates: int = Field(default=50, ge=1, le=1000)


class Budget(BaseModel):
    budget_tokens: int
    output_reserve: int
    input_budget: int
    recall_budget: int
    high_water: int
    low_water: int
    used_tokens: int


class Section(BaseModel):
    name: str
    messages: list[Message]
    tokens: int


class Breakpoint(BaseModel):
    message_index: int
    """Index in the assembled message list of the last message before the breakpoint."""
    section: str
    tokens_before: int


class ContextPlan(BaseModel):
    """What a request will send, and why. ``messages`` is the provider input, in layout order."""

    sections: list[Section]
    budget: Budget
    included: list[int] = Field(default_factory=list)
    """Verbatim turn seqs."""
    summarised: list[tuple[int, int]] = Field(default_factory=list)
    recalled: list[int] = Field(default_factory=list)
    evicted: list[int] = Field(default_factory=list)
    """Evicted turn seqs that are in neither the verbatim nor the recalled section."""
    breakpoints: list[Breakpoint] = Field(default_factory=list)

    @property
    def messages(self) -> list[Message]:
        return [m for section in self.sections for m in section.messages]

    @property
    def input_tokens(self) -> int:
        return self.budget.used_tokens

    def stable_prefix_tokens(self) -> int:
        """Tokens of sections 1-4, the part a provider prefix cache can serve next time."""
        stable = ("system", "pins", "summaries", "recent")
        return sum(s.tokens for s in self.sections if s.name in stable)

    def inspection(self) -> dict[str, Any]:
        return {
            "object": "session.context",
            "budget": self.budget.model_dump(),
            "sections": [{"name": s.name, "tokens": s.tokens, "messages": len(s.messages)} for s in self.sections],
            "turns": {
                "included": self.included,
                "summarised": [list(r) for r in self.summarised],
                "recalled": self.recalled,
                "evicted": self.evicted,
            },
            "breakpoints": [b.model_dump() for b in self.breakpoints],
        }


class StoredContext(BaseModel):
    """What a session stores beside its turns, read together: metadata, pins (oldest first) and summary epochs
    (in turn order)."""

    meta: SessionMeta
    pins: list[Pin]
    epochs: list[Epoch]


class CompactionRequest(BaseModel):
    """A compaction job (the compaction queue's message body): compact this session if its eviction mark is
    still ``evicted_through``."""

    tenant: str
    session_id: str
    evicted_through: int
