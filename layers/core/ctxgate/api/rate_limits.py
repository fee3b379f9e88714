"""OpenAI's rate-limit headers for a key's quota state.

``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; a reset is a duration in OpenAI's (Go's) format:
``"20ms"``, ``"1s"``, ``"6m0s"``, ``"1h2m3s"``. A key with no limit of a kind gets no headers of that kind.
"""

from __future__ import annotations

import math

from ctxgate.quotas.models import RateLimitState


def rate_limit_headers(state: RateLimitState | None) -> dict[str, str]:
    if state is None:
        return {}
    headers: dict[str, str] = {}
    for kind, limit, remaining, reset in (
        ("requests", state.limit_requests, state.remaining_requests, state.reset_requests),
        ("tokens", state.limit_tokens, state.remaining_tokens, state.reset_tokens),
    ):
        if limit is None or remaining is None or reset is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
        headers[f"x-ratelimit-reset-{kind}"] = duration(reset)
    return headers


def duration(seconds: float) -> str:
    """``seconds`` as OpenAI writes a reset: milliseconds under a second, else whole seconds (rounded up)."""
    milliseconds = max(0, math.ceil(seconds * 1000))
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
