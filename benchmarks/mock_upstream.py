"""A minimal OpenAI-compatible upstream for ``ctxgate bench overhead``: every chat completion gets the same answer.

It runs as its own process (``python -m benchmarks.mock_upstream --port P``), so its CPU is neither the gateway's nor
the benchmark client's. It must not add latency of its own: each response leaves in one send (headers and body share a
write buffer that ``http.server`` flushes after the request) with Nagle's algorithm off.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "Hello! How can I help you today?"


def completion(model: str) -> bytes:
    """The body a real OpenAI Chat Completions endpoint would return for a short answer."""
    return json.dumps(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"},
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
        }
    ).encode()


class MockUpstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and body are buffered together and sent by the flush after each request

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/").endswith("/chat/completions"):
            status, body = 200, completion(str(request.get("model", "mock")))
        else:
            status, body = 404, b'{"error": {"message": "not found", "type": "invalid_request_error"}}'
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), MockUpstream)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, required=True)
    options = arguments.parse_args()
    serve(options.host, options.port)
