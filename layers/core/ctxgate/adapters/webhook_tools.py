"""Webhook tools: one POST per tool call, to the address that passed the SSRF check and to no other.

httpcore is used directly (not through httpx) because its public ``network_backend`` hook is what lets a call
connect to an address chosen here while the URL, and so TLS SNI, certificate checks and the ``Host`` header,
keep the original host name. The same hook bounds every socket operation by what is left of one deadline per call,
so a server that drips a byte at a time cannot hold a call open past ``timeout_seconds``.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

import httpcore

from ctxgate.adapters.webhook_policy import WebhookPolicy, WebhookRefused, WebhookTarget
from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError, TransientError

MAX_RESPONSE_BYTES = 256 * 1024
_URL_SAFE = "/%:@!$&'()*+,;=?-._~"  # what may stay as is in a path or query; anything else is percent-encoded
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``; raises ``OSError`` when the name does not resolve."""


def system_resolver(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class Deadline:
    """One instant per call; every blocking step gets only the time left before it."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.at = clock() + seconds

    def left(self, timeout: float | None, error: type[Exception]) -> float:
        """The timeout for the next step: at most ``timeout`` and what is left; raises ``error`` when none is."""
        left = self.at - self._clock()
        if left <= 0:
            raise error("the tool call's deadline passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, left), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class PinnedBackend(httpcore.NetworkBackend):
    """Connects every request for ``host`` to ``address``, within ``deadline``; TLS still verifies ``host``."""

    def __init__(
        self, host: str, address: str, deadline: Deadline, backend: httpcore.NetworkBackend | None = None
    ) -> None:
        self._host = host
        self._address = address
        self._deadline = deadline
        self._backend = backend or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        if host.strip("[]") != self._host:  # no redirects are followed, so only the checked host is ever asked for
            raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
        left = self._deadline.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(self._address, port, left, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise httpcore.ConnectError("webhook tools never use unix sockets")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class WebhookToolRunner:
    """Runs webhook tools under a :class:`WebhookPolicy`. ``resolver`` and ``ssl_context`` (default: httpcore's,
    with certifi's CAs) are injectable for tests."""

    def __init__(
        self, policy: WebhookPolicy, resolver: Resolver = system_resolver, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.ssl_context = ssl_context

    def check(self, spec: ToolSpec) -> None:
        if spec.endpoint is None:
            raise ToolError(f"tool {spec.function.name} is not a webhook")
        try:
            self.policy.check_url(spec.endpoint.url)
        except WebhookRefused as refused:
            raise ToolError(f"tool {spec.function.name}: {refused}") from None

    def run(self, spec: ToolSpec, arguments: dict[str, Any], *, idempotency_key: str) -> str:
        """POST the arguments as JSON; 2xx is the result, 429/5xx/timeouts are transient, anything else an error
        result. Redirects are not followed: a 3xx is an error result."""
        name, endpoint = spec.function.name, spec.endpoint
        if endpoint is None:
            raise ToolError(f"tool {name} is not a webhook")
        deadline = Deadline(endpoint.timeout_seconds)
        try:
            target = self.policy.check_url(endpoint.url)
            address = self.policy.pick_address(self._resolve(target, deadline))
        except WebhookRefused as refused:
            raise ToolError(f"tool {name}: {refused}") from None
        headers = {
            **{k: v for k, v in endpoint.headers.items() if k.lower() != "content-type"},  # the body is always JSON
            "Host": _host_header(target),
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
        }
        backend = PinnedBackend(target.host, address, deadline)
        try:
            content = json.dumps(arguments).encode()
            status, body = _post(target, endpoint.url, headers, content, backend, deadline, self.ssl_context)
        except httpcore.TimeoutException:
            raise TransientError(f"tool {name} did not answer within {endpoint.timeout_seconds:g} s") from None
        except (httpcore.NetworkError, httpcore.ProtocolError) as error:
            raise TransientError(f"tool {name} unreachable ({type(error).__name__})") from None
        text = body.decode("utf-8", errors="replace")
        if status == 429 or status >= 500:
            raise TransientError(f"tool {name} returned HTTP {status}")
        if 300 <= status < 400:
            raise ToolError(f"tool {name} answered with a redirect (HTTP {status}); redirects are not followed")
        if status >= 400:
            raise ToolError(f"tool {name} returned HTTP {status}: {text[:500]}")
        return text

    def _resolve(self, target: WebhookTarget, deadline: Deadline) -> list[str]:
        """The host's addresses, within the call's deadline (``getaddrinfo`` itself takes no timeout)."""
        if target.literal is not None:
            return [str(target.literal)]
        found: list[list[str]] = []
        failed: list[OSError] = []

        def resolve() -> None:
            try:
                found.append(self.resolver(target.host, target.port))
            except OSError as error:
                failed.append(error)

        worker = threading.Thread(target=resolve, daemon=True)
        worker.start()
        worker.join(deadline.left(None, TransientError))
        if failed:
            raise TransientError(f"cannot resolve the tool host ({type(failed[0]).__name__})")
        if not found:
            raise TransientError("resolving the tool host took longer than the call's deadline")
        return found[0]


def _host_header(target: WebhookTarget) -> str:
    host = f"[{target.host}]" if target.literal is not None and target.literal.version == 6 else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def _post(
    target: WebhookTarget,
    url: str,
    headers: dict[str, str],
    content: bytes,
    backend: PinnedBackend,
    deadline: Deadline,
    ssl_context: ssl.SSLContext | None,
) -> tuple[int, bytes]:
    """One POST through a pool that can only reach the pinned address; the body is read up to the size cap."""
    # The request is built from the checked parts, so no second URL parser can disagree about the host.
    request_url = httpcore.URL(
        scheme=target.scheme.encode(), host=target.host.encode("ascii"), port=target.port, target=_request_target(url)
    )
    left = deadline.left(None, httpcore.ConnectTimeout)
    timeouts = {"connect": left, "read": left, "write": left, "pool": left}
    with (
        httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=backend, retries=0, max_connections=1) as pool,
        pool.stream("POST", request_url, headers=headers, content=content, extensions={"timeout": timeouts}) as reply,
    ):
        body = bytearray()
        for chunk in reply.iter_stream():
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise ToolError(f"tool response is over {MAX_RESPONSE_BYTES} bytes")
        return reply.status, bytes(body)


def _request_target(url: str) -> bytes:
    """The URL's path and query, percent-encoded where HTTP/1.1 requires it (the fragment is never sent)."""
    parts = urlsplit(url)
    path = quote(parts.path or "/", safe=_URL_SAFE)
    return (f"{path}?{quote(parts.query, safe=_URL_SAFE)}" if parts.query else path).encode("ascii")
