"""Stopping ``ctxgate local`` never waits on a serving loop that is not running."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from ctxgate_local.runtime import LocalRuntime


class Moto:
    stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_stop_returns_when_a_ctrl_c_came_before_the_serving_loop_began():
    # GIVEN a runtime whose HTTP server never entered its serving loop (Ctrl-C arrived first)
    moto = Moto()
    runtime = LocalRuntime(
        stack=None, aws_endpoint="", moto_server=moto, http_server=HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    )
    # WHEN it is stopped
    stopping = threading.Thread(target=runtime.stop, daemon=True)
    stopping.start()
    stopping.join(30)  # a guard against hanging forever, not a timing assertion
    # THEN stop returns (it used to wait forever for the loop to report its end) and moto is stopped
    assert not stopping.is_alive() and moto.stopped


def test_stop_ends_a_serving_loop_running_in_another_thread():
    # GIVEN a runtime serving in a thread
    moto = Moto()
    runtime = LocalRuntime(
        stack=None, aws_endpoint="", moto_server=moto, http_server=HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    )
    serving = threading.Thread(target=runtime.serve_forever, daemon=True)
    serving.start()
    while not runtime.serving:
        threading.Event().wait(0.01)
    # WHEN it is stopped
    runtime.stop()
    serving.join(30)
    # THEN the loop has ended
    assert not serving.is_alive() and not runtime.serving
