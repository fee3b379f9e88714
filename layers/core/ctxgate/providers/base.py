"""The provider port and the three ways a provider call can fail.

- :class:`TransientProviderError`: 429, 5xx, connect/read timeouts. Retried with backoff, then fallbacks.
- :class:`ProviderRejected`: the upstream refused the request itself (400/404/413/422). Not retried; the
  client must change its request, so it surfaces as a 4xx.
- :class:`ProviderUnusable`: this provider cannot serve at all (bad credentials, missing access). Not retried,
  but the next fallback may work.
"""

from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Protocol

from ctxgate.retry import RetryableError

if TYPE_CHECKING:
    import httpx

    from ctxgate.messages import Completion, ProviderRequest


class Provider(Protocol):
    def complete(self, request: ProviderRequest) -> Completion:
        """Run one chat completion. Raises one of the errors below on failure."""
        ...


class TransientProviderError(RetryableError):
    pass


class ProviderRejected(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ProviderUnusable(Exception):
    pass


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
REJECTED_STATUS = frozenset({400, 404, 413, 422})


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date. None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def raise_for_http_status(response: httpx.Response, provider: str) -> None:
    """Map an upstream HTTP error response to the provider error taxonomy. Returns on 2xx."""
    status = response.status_code
    if status < 400:
        return
    detail = response.text[:500]
    message = f"{provider} returned HTTP {status}: {detail}"
    if status in RETRYABLE_STATUS:
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is None and "retry-after-ms" in response.headers:
            retry_after = parse_retry_after(response.headers["retry-after-ms"])
            retry_after = None if retry_after is None else retry_after / 1000.0
        raise TransientProviderError(message, retry_after=retry_after)
    if status in REJECTED_STATUS:
        raise ProviderRejected(message, status)
    raise ProviderUnusable(message)
