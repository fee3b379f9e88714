"""An OpenAI-compatible upstream for ``ctxgate bench stream``: every streamed chat completion is ``--chunks``
content chunks, one every ``--interval-ms`` (the first one too), then the usage chunk and ``[DONE]``.

It runs as its own process (``python -m benchmarks.stream_upstream --port P ...``). Each chunk leaves in one send
(HTTP/1.1 chunked framing written by hand, Nagle's algorithm off), so the client of a direct request sees every
chunk as it is produced: the baseline the gateway is compared with.
"""

from __future__ import annotations

import argparse
import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def make_handler(chunks: int, interval: float) -> type[BaseHTTPRequestHandler]:
    class StreamingUpstream(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _event(self, payload: dict[str, Any] | str) -> None:
            data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
            event = f"data: {data}\n\n".encode()
            self.wfile.write(b"%x\r\n%b\r\n" % (len(event), event))

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            model = str(request.get("model", "stream"))
            base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
            started = time.perf_counter()
            for index in range(chunks):
                # Paced against the start, so that the interval holds however long a send took.
                time.sleep(max(0.0, started + (index + 1) * interval - time.perf_counter()))
                delta = {"content": f"word{index} "} if index else {"role": "assistant", "content": "word0 "}
                self._event({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            self._event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            usage = {"prompt_tokens": 12, "completion_tokens": chunks, "total_tokens": 12 + chunks}
            self._event({**base, "choices": [], "usage": usage})
            self._event("[DONE]")
            self.wfile.write(b"0\r\n\r\n")

    return StreamingUpstream


def serve(host: str, port: int, chunks: int, interval: float) -> None:
    server = ThreadingHTTPServer((host, port), make_handler(chunks, interval))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--host", default="127.0.0.1")
    arguments.add_argument("--port", type=int, required=True)
    arguments.add_argument("--chunks", type=int, default=50)
    arguments.add_argument("--interval-ms", type=float, default=20.0)
    options = arguments.parse_args()
    serve(options.host, options.port, options.chunks, options.interval_ms / 1000.0)
