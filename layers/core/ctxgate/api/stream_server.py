"""The streaming function's web server: the api function's own handler behind a Lambda function URL.

Lambda's Python runtime cannot stream a response, so the streaming function (``StreamingFunction`` in
template.yaml) runs the AWS Lambda Web Adapter as its runtime wrapper (``AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap``,
``AWS_LWA_INVOKE_MODE=response_stream``), which starts this server (``functions/api/run.sh``) and forwards each
function-URL request to it over HTTP on ``PORT``; whatever this server writes, chunk by chunk, streams to the client.

Each request is served exactly as ``ctxgate local`` serves one (:mod:`ctxgate.api.http_front`): it becomes the
payload-format-2.0 event of an HTTP API, the api function's ``lambda_handler`` (``functions/api/app.py``, the same
code as the buffered function: one domain code path) handles it inside :func:`ctxgate.api.streaming.streaming_front`,
and a streamed body is written as it is produced. Function URLs run no API Gateway authorizer, so every route but
the public ones is authenticated here first (:func:`ctxgate.api.request_auth.authenticate_request`, the same check
as the HTTP API's authorizer), and the event carries the same authorizer context; a request without valid
credentials never reaches the handler.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
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
from ctxgate.api.request_auth import PUBLIC_ROUTES, authenticate_request
from ctxgate.api.streaming import streaming_front
from ctxgate.errors import Unauthorized

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # a function URL's request limit
ADAPTER_HEADERS = ("x-amzn-lambda-context", "x-amzn-request-context")
"""What the Web Adapter adds to each request (the invocation's context); not passed on as request headers."""
DEFAULT_TIMEOUT_SECONDS = 300.0
MAX_TIMEOUT_SECONDS = 900.0  # Lambda's own limit: no context header may stretch a deadline (and a lease) further

Handler = Callable[[dict[str, Any], Any], Any]
Authenticator = Callable[[Mapping[str, str]], dict[str, Any]]


@dataclass
class InvocationContext:
    """The attributes of Lambda's context object that the handler reads, for the current invocation."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: float
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline_ms - time.time() * 1000))


def invocation_context(headers: Mapping[str, str]) -> InvocationContext:
    """The invocation's context from the Web Adapter's ``x-amzn-lambda-context`` header (its request id, deadline
    and function), or a stand-in when the server runs without the adapter."""
    try:
        raw = json.loads(headers.get("x-amzn-lambda-context") or "{}")
    except ValueError:
        raw = {}
    env = raw.get("env_config") or {}
    return InvocationContext(
        function_name=str(env.get("function_name") or "ctxgate-stream"),
        memory_limit_in_mb=int(env.get("memory") or 1024),
        invoked_function_arn=str(raw.get("invoked_function_arn") or "arn:aws:lambda:::function:ctxgate-stream"),
        aws_request_id=str(raw.get("request_id") or uuid.uuid4()),
        deadline_ms=min(
            float(raw.get("deadline") or (time.time() + DEFAULT_TIMEOUT_SECONDS) * 1000),
            (time.time() + MAX_TIMEOUT_SECONDS) * 1000,
        ),
        function_version=str(env.get("version") or "$LATEST"),
        log_group_name=str(env.get("log_group") or ""),
        log_stream_name=str(env.get("log_stream") or ""),
    )


def unauthorized(error: Unauthorized) -> HttpResponse:
    return HttpResponse(401, dict(JSON_HEADERS), json.dumps(error.to_body()).encode())


def make_server(
    host: str, port: int, handler: Handler, *, authenticate: Authenticator = authenticate_request
) -> ThreadingHTTPServer:
    """A threaded HTTP/1.1 server handing every request to ``handler`` (after ``authenticate`` for non-public
    routes), streaming bodies chunk by chunk."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "ctxgate-stream"
        disable_nagle_algorithm = True  # each streamed chunk leaves at once

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, response: HttpResponse) -> None:
            try:
                write_response(self.wfile, response, {"date": self.date_time_string()})
            except Exception:
                self.close_connection = True
                raise

        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                self.close_connection = True
                self._send(HttpResponse(413, dict(JSON_HEADERS), b'{"message":"Request Entity Too Large"}'))
                return
            body = self.rfile.read(length) if length else b""
            headers = request_headers(self)
            context = invocation_context(headers)
            headers = {k: v for k, v in headers.items() if k not in ADAPTER_HEADERS}
            account = context.invoked_function_arn.split(":")[4] if context.invoked_function_arn.count(":") >= 5 else ""
            event = http_event(
                self.command, self.path, headers, body, route_key="$default", account=account, api_id="lambda-url"
            )
            if (self.command, urlsplit(self.path).path) not in PUBLIC_ROUTES:
                try:
                    event["requestContext"]["authorizer"] = authenticate(headers)
                except Unauthorized as refusal:
                    self._send(unauthorized(refusal))
                    return
            try:
                with streaming_front() as sink:
                    result = handler(event, context)
                response = streamed(from_result(result), sink)
            except Exception:
                logger.exception("the handler failed")
                self._send(HttpResponse(500, dict(JSON_HEADERS), b'{"message":"Internal Server Error"}'))
                return
            self._send(response)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method goes to the handler, whose router answers unknown ones
                return self._serve
            raise AttributeError(name)

    server = ThreadingHTTPServer((host, port), RequestHandler)
    server.daemon_threads = True
    return server


def main() -> None:
    """Serve the api function's handler (module ``app`` of the function's code, ``functions/api``) on ``PORT``."""
    from ctxgate.settings import get_settings

    handler = importlib.import_module("app").lambda_handler
    server = make_server("127.0.0.1", get_settings().web_port, handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
