"""The emulated HTTP API answers what API Gateway would, whatever the method."""

from __future__ import annotations

import threading

import httpx
import pytest
from ctxgate_local.http_api import make_server
from ctxgate_local.runtime import free_port


@pytest.fixture
def empty_api():
    server = make_server("127.0.0.1", free_port(), {})
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("method", ["GET", "TRACE", "QUERY"])
def test_a_request_no_route_matches_is_api_gateways_404(empty_api, method):
    # GIVEN an HTTP API with no route (schemathesis found TRACE and QUERY answered with the standard library's
    #   HTML 501: curl -X QUERY http://127.0.0.1:PORT/healthz)
    # WHEN a request arrives
    response = httpx.request(method, f"{empty_api}/healthz")
    # THEN it is API Gateway's JSON 404
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
