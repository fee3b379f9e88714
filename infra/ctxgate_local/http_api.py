"""An emulated API Gateway HTTP API: each HTTP request becomes a payload-format-2.0 event for the function whose
``HttpApi`` event in template.yaml matches the route, exactly as API Gateway would route it, after the route's
Lambda authorizer (``ctxgate_local.authorizers``) allowed it."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from ctxgate.api.streaming import StreamSink, streaming_front

from ctxgate_local.handlers import invoke
from ctxgate_local.template import ACCOUNT, Function

if TYPE_CHECKING:
    from ctxgate_local.authorizers import LambdaAuthorizer

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API's own limit
FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})
JSON_HEADERS = {"content-type": "application/json"}


class Route:
    def __init__(
        self, method: str, template: str, function: Function, authorizer: LambdaAuthorizer | None = None
    ) -> None:
        self.method = method
        self.template = template
        self.function = function
        self.authorizer = authorizer
        pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\+\\\}", r"(?P<\1>.+)", re.escape(template))
        pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", pattern)
        self.regex = re.compile(f"^{pattern}$")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        found = self.regex.match(path)
        return found.groupdict() if found else None


def build_routes(
    functions: dict[str, Function], authorizers: dict[tuple[str, str], LambdaAuthorizer | None] | None = None
) -> list[Route]:
    routes = [Route(m, p, f, (authorizers or {}).get((m, p))) for f in functions.values() for m, p in f.routes]
    # API Gateway prefers the most specific route: literal paths before parameters before greedy ones.
    routes.sort(key=lambda r: ("+}" in r.template, r.template.count("{"), -len(r.template)))
    return routes


def to_event(
    method: str, raw_path: str, headers: dict[str, str], body: bytes, route: Route, path_parameters: dict[str, str]
) -> dict[str, Any]:
    split = urlsplit(raw_path)
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = time.time()
    route_key = f"{route.method} {route.template}"
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": split.path,
        "rawQueryString": split.query,
        "cookies": [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()] or None,
        "headers": headers,
        "queryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": split.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text or None,
        "isBase64Encoded": is_base64,
    }


@dataclass(frozen=True)
class LocalResponse:
    """A response of the emulated API. A ``bytes`` body is sent whole, with its length; any other iterable of
    ``bytes`` is streamed with ``Transfer-Encoding: chunked``, each chunk sent as soon as the iterable yields it."""

    status: int
    headers: dict[str, str]
    body: bytes | Iterable[bytes] = b""


def from_result(result: Any) -> LocalResponse:
    """Lambda's payload-2.0 response rules: a dict with statusCode is used as is, anything else is JSON 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return LocalResponse(200, dict(JSON_HEADERS), json.dumps(result).encode())
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return LocalResponse(int(result["statusCode"]), headers, data)


def streamed(response: LocalResponse, sink: StreamSink) -> LocalResponse:
    """The handler's response, with the body a route handed to the front (:mod:`ctxgate.api.streaming`) if any."""
    if sink.body is None:
        return response
    if response.status >= 300:  # the handler failed after the route had opened its stream: do not send it
        close = getattr(sink.body, "close", None)
        if close is not None:
            close()
        return response
    return LocalResponse(response.status, response.headers, sink.body)


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def write_response(out: BinaryWriter, response: LocalResponse, server_headers: dict[str, str]) -> None:
    """Write ``response`` as HTTP/1.1 to ``out``, an unbuffered socket writer (every ``write`` is one send).

    A buffered body goes out in the same write as the head: sent separately, the body waited for the client's delayed
    ACK of the head (Nagle's algorithm), ~40 ms per request. A streamed body goes out as one write per chunk, so each
    chunk reaches the client as soon as it exists. The framing headers are always the server's own.
    """
    headers = {**server_headers, **{k: v for k, v in response.headers.items() if k not in FRAMING_HEADERS}}
    reason = BaseHTTPRequestHandler.responses.get(response.status, ("",))[0]
    head = f"HTTP/1.1 {response.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if isinstance(response.body, bytes | bytearray):
        out.write(f"{head}content-length: {len(response.body)}\r\n\r\n".encode("latin-1") + response.body)
        return
    try:
        out.write(f"{head}transfer-encoding: chunked\r\n\r\n".encode("latin-1"))
        for chunk in response.body:
            if chunk:  # an empty chunk would end the body early
                out.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
        out.write(b"0\r\n\r\n")
    finally:
        # A client that went away ends the writes: the body is closed so that its producer can finish its work
        # (a chat stream then completes and stores the turn it paid for) and release what it holds.
        close = getattr(response.body, "close", None)
        if close is not None:
            close()


class LocalHttpServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of clients connecting at once (which API Gateway would accept)
    # was refused. The local server accepts them all and serves each on a thread.
    request_queue_size = 128


def make_server(
    host: str,
    port: int,
    functions: dict[str, Function],
    authorizers: dict[tuple[str, str], LambdaAuthorizer | None] | None = None,
) -> ThreadingHTTPServer:
    routes = build_routes(functions, authorizers)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ctxgate-local"
        # Every write is sent at once: a streamed chunk must not wait for the ACK of the one before it.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, response: LocalResponse) -> None:
            server_headers = {"server": self.version_string(), "date": self.date_time_string()}
            try:
                write_response(self.wfile, response, server_headers)
            except Exception:  # a response cut off midway (a failed stream) leaves the connection unusable
                self.close_connection = True
                raise

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                self._send(LocalResponse(413, JSON_HEADERS, b'{"message":"Request Entity Too Large"}'))
                return
            body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                name = name.lower()
                headers[name] = f"{headers[name]},{value}" if name in headers else value
            path = urlsplit(self.path).path
            for route in routes:
                params = route.match(self.command, path)
                if params is not None:
                    break
            else:
                self._send(LocalResponse(404, JSON_HEADERS, b'{"message":"Not Found"}'))
                return
            event = to_event(self.command, self.path, headers, body, route, params)
            try:
                refusal = route.authorizer.authorize(event) if route.authorizer is not None else None
                if refusal is not None:
                    self._send(LocalResponse(*refusal))
                    return
                with streaming_front() as sink:
                    result = invoke(route.function, event)
                response = streamed(from_result(result), sink)
            except Exception:  # what API Gateway answers when the integration fails
                self._send(LocalResponse(500, JSON_HEADERS, b'{"message":"Internal Server Error"}'))
                raise
            self._send(response)

        def __getattr__(self, name: str) -> Any:
            # Every method is served (``do_TRACE``, ``do_QUERY``, ...): API Gateway answers one no route has with
            # its JSON 404, where the standard library would send an HTML 501.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

    server = LocalHttpServer((host, port), Handler)
    server.daemon_threads = True
    return server
