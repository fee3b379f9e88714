"""OpenAI's x-ratelimit-* headers and their duration format."""

from __future__ import annotations

import pytest
from ctxgate.api.rate_limits import duration, rate_limit_headers
from ctxgate.quotas.models import RateLimitState


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.02, "20ms"), (0.0, "0ms"), (1.0, "1s"), (0.9999, "1s"), (59.2, "1m0s"), (360.0, "6m0s"), (3723, "1h2m3s")],
)
def test_resets_are_written_as_openai_writes_them(seconds, text):
    assert duration(seconds) == text


def test_a_key_gets_headers_only_for_the_limits_it_has():
    state = RateLimitState(limit_requests=10, remaining_requests=3, reset_requests=12.5)
    assert rate_limit_headers(state) == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "3",
        "x-ratelimit-reset-requests": "13s",
    }
    assert rate_limit_headers(None) == {}
