"""The issue's done-when, end to end: ``ctxgate local`` configured with an ``openai``-provider model whose
``base_url`` is a scripted upstream; ``POST /v1/runs`` with a webhook tool reaches ``succeeded``."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.e2e.conftest import start_gateway, stop_gateway
from tests.functional.test_agent_runs import Scripted, completion, script

pytestmark = pytest.mark.e2e


def test_a_run_with_a_webhook_tool_succeeds_in_ctxgate_local(tmp_path):
    upstream, tools = Scripted(), Scripted()
    upstream.routes["/v1/chat/completions"] = script(
        completion(calls=[("call_1", "lookup_order", {"order": 1042})]), completion("Order 1042 ships tomorrow.")
    )
    tools.routes["/orders"] = lambda body: (200, {"order": body["order"], "ships": "tomorrow"})
    config = tmp_path / "models.yaml"
    config.write_text(
        f"models:\n  - {{name: agent, provider: openai, upstream_model: gpt-x, base_url: '{upstream.url}/v1'}}\n"
    )
    allowed = f"ToolAllowedHosts=127.0.0.1:{tools.server.server_address[1]}"  # loopback only when named with its port
    gateway = start_gateway("--config", str(config), "--parameter", allowed)
    try:
        base = gateway.base_url
        body = {
            "model": "agent",
            "input": [{"role": "user", "content": "When does order 1042 ship?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {"name": "lookup_order", "parameters": {"type": "object"}},
                    "endpoint": {"url": f"{tools.url}/orders"},
                }
            ],
            "max_steps": 4,
        }
        created = httpx.post(f"{base}/runs", json=body, timeout=30)
        assert created.status_code == 202 and created.json()["status"] == "queued"
        run_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while (run := httpx.get(f"{base}/runs/{run_id}", timeout=30).json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
        assert run["status"] == "succeeded", json.dumps(run)
        assert run["output"] == "Order 1042 ships tomorrow."
        assert [(s["kind"], s.get("tool")) for s in run["steps"]] == [
            ("model", None),
            ("tool", "lookup_order"),
            ("model", None),
        ]
        assert tools.requests["/orders"] == [{"order": 1042}]
        bad = httpx.post(f"{base}/runs", json={"model": "agent", "input": []}, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        assert httpx.get(f"{base}/runs/run_missing", timeout=30).status_code == 404
    finally:
        stop_gateway(gateway)
        upstream.server.shutdown()
        tools.server.shutdown()
