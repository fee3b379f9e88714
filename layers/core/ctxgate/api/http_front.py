"""HTTP/1.1 in front of the api function's handler: a request becomes a payload-format-2.0 event, the handler's
result (or the body a route streamed, :mod:`ctxgate.api.streaming`) becomes the response.

Shared by the two fronts that speak HTTP themselves, so that both run the same handler the same way:
``ctxgate local``'s emulated HTTP API (``infra/ctxgate_local/http_api.py``) and the streaming function's server
behind the Lambda function URL (:mod:`ctxgate.api.stream_server`).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from ctxgate.api.streaming import StreamSink

FRAMING_HEADERS = frozenset({"content-length", "connection", "transfer-encoding"})
JSON_HEADERS = {"content-type": "application/json"}


def http_event(
    method: str,
    raw_path: str,
    headers: dict[str, str],
    body: bytes,
    *,
    route_key: str,
    path_parameters: dict[str, str] | None = None,
    account: str,
    api_id: str,
) -> dict[str, Any]:
    """The payload-format-2.0 event API Gateway's HTTP API (or a function URL) sends for this request.
    ``headers`` are lower-cased, repeated ones joined with commas."""
    split = urlsplit(raw_path)
    query: dict[str, str] = {}
    for key, value in parse_qsl(split.query, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode(), True
    now = time.time()
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
            "accountId": account,
            "apiId": api_id,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": api_id,
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


def request_headers(handler: BaseHTTPRequestHandler) -> dict[str, str]:
    """The request's headers, lower-cased, repeated ones joined with commas (as API Gateway forwards them)."""
    headers: dict[str, str] = {}
    for name, value in handler.headers.items():
        name = name.lower()
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


@dataclass(frozen=True)
class HttpResponse:
    """A response to send. A ``bytes`` body is sent whole, with its length; any other iterable of ``bytes`` is
    streamed with ``Transfer-Encoding: chunked``, each chunk sent as soon as the iterable yields it."""

    status: int
    headers: dict[str, str]
    body: bytes | Iterable[bytes] = b""


def from_result(result: Any) -> HttpResponse:
    """Lambda's payload-2.0 response rules: a dict with statusCode is used as is, anything else is JSON 200."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResponse(200, dict(JSON_HEADERS), json.dumps(result).encode())
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(values)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    return HttpResponse(int(result["statusCode"]), headers, data)


def streamed(response: HttpResponse, sink: StreamSink) -> HttpResponse:
    """The handler's response, with the body a route handed to the front (:mod:`ctxgate.api.streaming`) if any."""
    if sink.body is None:
        return response
    if response.status >= 300:  # the handler failed after the route had opened its stream: do not send it
        close = getattr(sink.body, "close", None)
        if close is not None:
            close()
        return response
    return HttpResponse(response.status, response.headers, sink.body)


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> int | None: ...


def write_response(out: BinaryWriter, response: HttpResponse, server_headers: dict[str, str]) -> None:
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
