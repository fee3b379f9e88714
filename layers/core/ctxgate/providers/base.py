"""The provider port and the three ways a provider call can fail.

- :class:`TransientProviderError`: 429, 5xx, connect/read timeouts. Retried with backoff, then fallbacks.
- :class:`ProviderRejected`: the upstream refused the request itself (400/404/413/422). Not retried; the
  client must change its request, so it surfaces as a 4xx.
- :class:`ProviderUnusable`: this provider cannot serve at all (bad credentials, missing access). Not retried,
  but the next fallback may work.

Their messages carry upstream details (status, body excerpt, host) for the logs only: the router logs them and
raises client-facing errors with generic messages (:mod:`ctxgate.errors`).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ctxgate.retry import RetryableError

if TYPE_CHECKING:
    import httpx
    from httpx_sse import ServerSentEvent

    from ctxgate.messages import Completion, Message, ProviderRequest
    from ctxgate.providers.streaming import StreamEvent


class Provider(Protocol):
    def complete(self, request: ProviderRequest) -> Completion:
        """Run one chat completion. Raises one of the errors below on failure."""
        ...

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        """Run one chat completion, yielding its events as the upstream produces them
        (:mod:`ctxgate.providers.streaming`). Raises the same errors as :meth:`complete`, before or during
        iteration; closing the iterator early closes the upstream connection."""
        ...


class TransientProviderError(RetryableError):
    pass


class ProviderRejected(Exception):
    """``reason`` is a safe, ctxgate-chosen classification of the refusal (see :func:`rejection_reason`), never
    upstream text."""

    def __init__(self, message: str, status: int = 400, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ProviderUnusable(Exception):
    pass


RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 529})
REJECTED_STATUS = frozenset({400, 404, 413, 422})
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
_CONTEXT_LENGTH_HINTS = ("context_length_exceeded", "context length", "context window", "too long", "too many tokens")


def rejection_reason(detail: str) -> str | None:
    """A safe code for a refusal the client can act on, read from the upstream's error text (which itself is
    never shown to clients): the providers word "the prompt is too long" differently, so look for any wording."""
    lowered = detail.lower()
    return CONTEXT_LENGTH_EXCEEDED if any(hint in lowered for hint in _CONTEXT_LENGTH_HINTS) else None


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
        raise ProviderRejected(message, status, reason=rejection_reason(detail))
    raise ProviderUnusable(message)


ApiKey = str | Callable[[], str] | None
"""A provider key: fixed, absent, or read on each use (a secret; the reader caches it)."""


class HttpProvider:
    """Shared plumbing of the httpx-based adapters: base URL, key, timeout and one pooled client per provider.

    ``post`` maps transport failures (timeouts, refused connections) and HTTP errors to the taxonomy above.
    """

    name = "http"
    default_base_url = ""

    def __init__(
        self, *, base_url: str | None, api_key: ApiKey, timeout: float, client: httpx.Client | None = None
    ) -> None:
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._client = client

    @property
    def api_key(self) -> str | None:
        """The key to send now. Raises :class:`ProviderUnusable` if its secret cannot be read (a fallback may
        still serve; the reason is logged by the router, never shown to the client)."""
        if not callable(self._api_key):
            return self._api_key
        from ctxgate.providers.secrets import SecretUnavailable

        try:
            return self._api_key()
        except SecretUnavailable as error:
            raise ProviderUnusable(f"{self.name} key unavailable: {error}") from error

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout)
        return self._client

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        import httpx

        try:
            response = self.client.post(f"{self.base_url}{path}", json=body, headers=headers)
        except httpx.TransportError as error:
            raise TransientProviderError(f"{self.name} transport error: {error!r}") from error
        raise_for_http_status(response, self.name)
        try:
            data = response.json()
        except ValueError as error:
            raise TransientProviderError(f"{self.name} returned an unreadable body: {response.text[:200]}") from error
        if not isinstance(data, dict):
            raise TransientProviderError(f"{self.name} returned an unexpected body: {response.text[:200]}")
        return data

    def post_stream(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Iterator[ServerSentEvent]:
        """POST and yield the response's Server-Sent Events as they arrive (read with ``httpx-sse``).

        An HTTP error status raises like :meth:`post` before any event; a transport failure or a body that is not
        an event stream raises :class:`TransientProviderError` wherever it happens. Closing the iterator closes
        the upstream connection (the upstream stops generating)."""
        import httpx
        from httpx_sse import SSEError, connect_sse

        try:
            with connect_sse(self.client, "POST", f"{self.base_url}{path}", json=body, headers=headers) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise_for_http_status(source.response, self.name)
                yield from source.iter_sse()
        except httpx.TransportError as error:
            raise TransientProviderError(f"{self.name} stream transport error: {error!r}") from error
        except SSEError as error:
            raise TransientProviderError(f"{self.name} did not answer with an event stream: {error}") from error


def alternate_roles(
    messages: list[Message], to_blocks: Callable[[int, Message], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Anthropic and Bedrock take user/assistant turns with content blocks, and no system or tool role: tool
    results travel as user blocks, and consecutive messages of one role merge into one turn.

    ``to_blocks`` receives each message's index in ``messages`` (to place cache breakpoints)."""
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = to_blocks(index, message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns
