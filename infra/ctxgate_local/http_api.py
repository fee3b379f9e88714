"""An emulated API Gateway HTTP API: each HTTP request becomes a payload-format-2.0 event for the function whose
``HttpApi`` event in template.yaml matches the route, exactly as API Gateway would route it, after the route's
Lambda authorizer (``ctxgate_local.authorizers``) allowed it."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ctxgate.api.http_front import (
    JSON_HEADERS,
    HttpResponse,
    from_result,
    http_event,
    request_headers,
    streamed,
    write_response,
)
from ctxgate.api.streaming import streaming_front

from ctxgate_local.handlers import invoke
from ctxgate_local.template import ACCOUNT, Function

if TYPE_CHECKING:
    from ctxgate_local.authorizers import LambdaAuthorizer

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway HTTP API's own limit
__all__ = ["LocalResponse", "from_result", "make_server", "to_event", "write_response"]


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
    return http_event(
        method,
        raw_path,
        headers,
        body,
        route_key=f"{route.method} {route.template}",
        path_parameters=path_parameters,
        account=ACCOUNT,
        api_id="local",
    )


LocalResponse = HttpResponse
"""A response of the emulated API (:class:`ctxgate.api.http_front.HttpResponse`)."""


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
            headers = request_headers(self)
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
