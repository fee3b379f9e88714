"""A flaky OpenAI-compatible upstream for ``ctxgate bench contention``: a share of calls fail the ways real
providers fail (500, 503, 429 with ``Retry-After``, a dropped connection) or answer slowly; the rest succeed.

It runs as its own process (``python -m benchmarks.flaky_upstream --port P --fault-rate F --seed S``) and counts the
completions it served successfully, which ``GET /stats`` returns: the benchmark divides them by the turns the
gateway stored, so a call the gateway paid for but could not use shows up as more than 1.0.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("500", "503", "429", "drop", "slow")
SLOW_SECONDS = 2.0


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {"completions": 0, **dict.fromkeys(FAULTS, 0)}

    def add(self, name: str) -> None:
        with self.lock:
            self.counts[name] += 1


def completion(model: str, messages: list[dict[str, Any]]) -> bytes:
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    text = f"Noted: {str(last)[:60]}"
    return json.dumps(
        {
            "id": "chatcmpl-flaky",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 8, "total_tokens": 48},
        }
    ).encode()


def handler(stats: Stats, fault_rate: float, rng: random.Random) -> type[BaseHTTPRequestHandler]:
    lock = threading.Lock()

    class Flaky(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with stats.lock:
                self._send(200, json.dumps(stats.counts).encode())

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            with lock:
                fault = rng.choice(FAULTS) if rng.random() < fault_rate else None
            if fault is not None:
                stats.add(fault)
            error = b'{"error": {"message": "upstream trouble", "type": "server_error"}}'
            if fault in ("500", "503"):
                self._send(int(fault), error)
            elif fault == "429":
                self._send(429, error, {"retry-after": "1"})
            elif fault == "drop":
                self.close_connection = True
                self.connection.close()
            else:
                if fault == "slow":
                    time.sleep(SLOW_SECONDS)
                stats.add("completions")
                self._send(200, completion(str(request.get("model", "flaky")), request.get("messages", [])))

    return Flaky


def serve(host: str, port: int, fault_rate: float, seed: int) -> None:
    server = ThreadingHTTPServer((host, port), handler(Stats(), fault_rate, random.Random(seed)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, required=True)
    arguments.add_argument("--fault-rate", type=float, default=0.3)
    arguments.add_argument("--seed", type=int, default=7)
    options = arguments.parse_args()
    serve(options.host, options.port, options.fault_rate, options.seed)
