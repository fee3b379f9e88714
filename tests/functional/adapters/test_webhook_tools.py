"""Webhook tools against real HTTP servers on loopback: the pinned connection, the total deadline, the
Idempotency-Key header and how answers are classified. Loopback is reachable only because each test's allowlist
names 127.0.0.1 (with the server's port) explicitly; the resolver is injected, so names resolve without DNS."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import trustme
from ctxgate.adapters.webhook_policy import WebhookPolicy
from ctxgate.adapters.webhook_tools import MAX_RESPONSE_BYTES, WebhookToolRunner
from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError, TransientError


class ToolServer:
    """Answers each POST with ``reply[path]`` = (status, body bytes, extra headers) and records what it saw."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.reply: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.seen: list[dict[str, Any]] = []
        self.drip_finished = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                if self.path == "/drip":
                    return self._drip()
                status, data, headers = owner.reply[self.path]
                self.send_response(status)
                for name, value in {"content-length": str(len(data)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _drip(self) -> None:
                """One byte every 0.2 s for 6 s: far longer than the caller's 1 s deadline."""
                self.send_response(200)
                self.send_header("content-length", "30")
                self.end_headers()
                try:
                    for _ in range(30):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.2)
                except OSError:
                    return  # the caller hung up
                owner.drip_finished.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[ToolServer]:
    tools = ToolServer()
    yield tools
    tools.server.shutdown()


class Resolver:
    """Answers every name with ``answers``, counting the lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return self.answers


def webhook(url: str, timeout: float = 5) -> ToolSpec:
    return ToolSpec.model_validate({"function": {"name": "hook"}, "endpoint": {"url": url, "timeout_seconds": timeout}})


def runner(server: ToolServer, resolver: Resolver, *extra: str) -> WebhookToolRunner:
    policy = WebhookPolicy.parse([f"tools.example:{server.port}", "127.0.0.1", *extra])
    return WebhookToolRunner(policy, resolver=resolver)


def test_the_connection_goes_to_the_checked_address_and_keeps_the_host_header(server):
    # GIVEN a host name that resolves (once) to the allowlisted loopback address
    server.reply["/hook"] = (200, b'{"ok": true}', {})
    resolver = Resolver("127.0.0.1")
    # WHEN a tool call is made to the name
    result = runner(server, resolver).run(
        webhook(f"http://tools.example:{server.port}/hook"), {"city": "Oslo"}, idempotency_key="run_1:call_1"
    )
    # THEN the server got the request with the original Host, and the name was resolved exactly once
    assert result == '{"ok": true}'
    assert server.seen[0]["headers"]["Host"] == f"tools.example:{server.port}"
    assert json.loads(server.seen[0]["body"]) == {"city": "Oslo"}
    assert resolver.calls == [("tools.example", server.port)]


def test_tls_names_and_verifies_the_host_while_connecting_to_the_checked_address():
    # GIVEN an HTTPS tool server on loopback with a certificate for tools.example only, recording the SNI it gets
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("tools.example").configure_cert(server_tls)
    names: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, context: names.append(name)
    server = ToolServer(tls=server_tls)
    server.reply["/hook"] = (200, b"secure", {})
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    policy = WebhookPolicy.parse([f"tools.example:{server.port}", f"other.example:{server.port}", "127.0.0.1"])
    hook = WebhookToolRunner(policy, resolver=Resolver("127.0.0.1"), ssl_context=client_tls)
    try:
        # WHEN the tool is called by its name
        result = hook.run(webhook(f"https://tools.example:{server.port}/hook"), {}, idempotency_key="r:c")
        # THEN the handshake named tools.example, and the certificate was checked against that name, not the IP
        assert result == "secure" and names == ["tools.example"]
        with pytest.raises(TransientError):
            hook.run(webhook(f"https://other.example:{server.port}/hook"), {}, idempotency_key="r:c")
    finally:
        server.server.shutdown()


def test_the_path_and_query_reach_the_server_as_given(server):
    # GIVEN a URL with a query string and a character that must be percent-encoded
    server.reply["/v1/hook%20x?city=Oslo&units=metric"] = (200, b"ok", {})
    # WHEN the tool is called
    runner(server, Resolver("127.0.0.1")).run(
        webhook(f"http://tools.example:{server.port}/v1/hook x?city=Oslo&units=metric"), {}, idempotency_key="r:c"
    )
    # THEN the server saw the same path and query
    assert server.seen[0]["path"] == "/v1/hook%20x?city=Oslo&units=metric"


def test_every_call_carries_the_idempotency_key_of_its_run_and_tool_call(server):
    # GIVEN a webhook tool
    server.reply["/hook"] = (200, b"done", {})
    # WHEN the same call is made twice (a retry)
    hook = runner(server, Resolver("127.0.0.1"))
    for _ in range(2):
        hook.run(webhook(f"http://tools.example:{server.port}/hook"), {}, idempotency_key="run_9:call_3")
    # THEN both requests carry the same key
    assert [s["headers"]["Idempotency-Key"] for s in server.seen] == ["run_9:call_3", "run_9:call_3"]


def test_the_tools_own_headers_are_sent_and_the_body_is_always_json(server):
    # GIVEN a tool with its own credentials header and a conflicting content type
    server.reply["/hook"] = (200, b"ok", {})
    spec = ToolSpec.model_validate(
        {
            "function": {"name": "hook"},
            "endpoint": {
                "url": f"http://tools.example:{server.port}/hook",
                "headers": {"Authorization": "Bearer t0k", "content-type": "text/plain"},
            },
        }
    )
    # WHEN it is called
    runner(server, Resolver("127.0.0.1")).run(spec, {"a": 1}, idempotency_key="r:c")
    # THEN the server got the header, and one JSON content type
    headers = server.seen[0]["headers"]
    assert headers["Authorization"] == "Bearer t0k" and headers["Content-Type"] == "application/json"


def test_a_name_answering_a_public_and_a_loopback_address_is_refused_without_connecting(server):
    # GIVEN a resolver that answers a public address first and loopback second, and no IP allowlisted
    policy = WebhookPolicy.parse([f"tools.example:{server.port}"])
    hook = WebhookToolRunner(policy, resolver=Resolver("93.184.216.34", "127.0.0.1"))
    # WHEN the tool is called
    # THEN it is refused as an error result, and nothing reached the server
    with pytest.raises(ToolError, match="non-public"):
        hook.run(webhook(f"http://tools.example:{server.port}/hook"), {}, idempotency_key="r:c")
    assert server.seen == []


def test_a_server_dripping_bytes_is_cut_off_at_the_calls_deadline(server):
    # GIVEN a server that sends its body one byte every 0.2 s for 6 s
    hook = runner(server, Resolver("127.0.0.1"))
    started = time.monotonic()
    # WHEN a tool with a 1 s timeout calls it
    # THEN the call fails as transient (to be retried) before the server finished dripping
    with pytest.raises(TransientError, match="within 1 s"):
        hook.run(webhook(f"http://tools.example:{server.port}/drip", timeout=1), {}, idempotency_key="r:c")
    assert not server.drip_finished.is_set()
    assert time.monotonic() - started < 5, "sanity: far less than the 6 s the server drips for"


def test_a_port_not_named_by_the_allowlist_is_refused(server):
    # GIVEN an allowlist naming loopback's IP, but not this port
    hook = WebhookToolRunner(WebhookPolicy.parse(["127.0.0.1"]), resolver=Resolver("127.0.0.1"))
    # WHEN / THEN the check at run creation and the call itself both refuse it
    spec = webhook(f"http://127.0.0.1:{server.port}/hook")
    with pytest.raises(ToolError, match="allowlist"):
        hook.check(spec)
    with pytest.raises(ToolError, match="allowlist"):
        hook.run(spec, {}, idempotency_key="r:c")
    assert server.seen == []


@pytest.mark.parametrize(
    ("status", "body", "error", "match"),
    [
        (503, b"busy", TransientError, "HTTP 503"),
        (429, b"slow down", TransientError, "HTTP 429"),
        (400, b"no such city", ToolError, "no such city"),
        (302, b"", ToolError, "redirect"),
        (200, b"x" * (MAX_RESPONSE_BYTES + 1), ToolError, "over"),
    ],
)
def test_answers_are_classified_as_transient_or_permanent(server, status, body, error, match):
    # GIVEN a server answering with this status and body
    server.reply["/hook"] = (status, body, {"location": "http://169.254.169.254/"} if status == 302 else {})
    # WHEN / THEN the call raises the matching error, and a redirect is not followed
    with pytest.raises(error, match=match):
        runner(server, Resolver("127.0.0.1")).run(
            webhook(f"http://tools.example:{server.port}/hook"), {}, idempotency_key="r:c"
        )
    assert len(server.seen) == 1


def test_a_closed_port_is_transient(server):
    # GIVEN an allowlisted port nothing listens on
    server.server.shutdown()
    server.server.server_close()
    # WHEN / THEN the call is retried later rather than reported to the model
    with pytest.raises(TransientError, match="unreachable"):
        runner(server, Resolver("127.0.0.1")).run(
            webhook(f"http://tools.example:{server.port}/hook"), {}, idempotency_key="r:c"
        )
