"""What a chat turn takes and what it gives back, independent of the HTTP surface that carried it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ctxgate.cache.keys import CacheControl
from ctxgate.cache.service import CacheLookup
from ctxgate.context.models import ContextPlan
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.quotas.models import RateLimitState
from ctxgate.sessions.models import SessionRecord

RecordsOf = Callable[[Completion, Usage, int, str], list[SessionRecord]]
"""(completion, usage, seq of the first stored turn, served_by) -> records committed with the turn."""


@dataclass(frozen=True)
class CacheOptions:
    control: CacheControl = field(default_factory=CacheControl)
    opt_in: bool = False
    """Cache a non-deterministic request too."""
    threshold: float | None = None
    """A stricter semantic threshold for this request."""
    allow_extended: bool = False
    """The caller's key allows ``opt_in`` and a ``max-age`` above the default TTL (``KeyLimits.cache_opt_in``);
    without it both are ignored."""


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    params: GenerationParams
    pins: list[str] = field(default_factory=list)
    """Contents of the new messages the client marked ``"pin": true``."""
    budget_tokens: int | None = None
    cache: CacheOptions = field(default_factory=CacheOptions)
    cache_points: list[int] = field(default_factory=list)
    """Indices of ``messages`` after which the client asked for a provider prompt-cache breakpoint (Anthropic's
    ``cache_control``). Stateless requests only: on a session the context engine places the breakpoints."""
    deadline: float | None = None
    """Clock time by which the request must be answered (the function's own deadline); None: a default turn length
    from now. A session's lease is held no longer than this, and a request waits for it no later than it can serve."""
    instructions: str | None = None
    """A system prompt for this request only: it replaces the session's and is never stored (Responses API)."""
    expected_last_seq: int | None = None
    """Stateful only: append only if the session's newest turn is still this one, else :class:`HistoryMoved`."""
    allow_truncation: bool = True
    """False: a history that does not fit verbatim (eviction, summaries) is a 400 instead of being compacted."""
    check_output: Callable[[Completion], None] | None = None
    """Called with the model's answer before anything is stored or cached; raises to refuse it."""
    records: RecordsOf | None = None
    """Stateful only: records to commit atomically with the turn (e.g. the Responses API's response)."""


@dataclass(frozen=True)
class ChatOutcome:
    completion: Completion
    usage: Usage
    served_by: str
    session_id: str | None = None
    turn: int | None = None
    """Sequence number of the stored reply, for stateful requests."""
    plan: ContextPlan | None = None
    cache: CacheLookup | None = None
    rate_limits: RateLimitState | None = None
    """The key's quota state after this request (None: the caller has no per-key limits)."""
