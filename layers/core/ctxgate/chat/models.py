"""What a chat turn takes and what it gives back, independent of the HTTP surface that carried it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ctxgate.cache.keys import CacheControl
from ctxgate.cache.service import CacheLookup
from ctxgate.context.models import ContextPlan
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.quotas.models import RateLimitState


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
