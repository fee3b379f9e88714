from __future__ import annotations

import httpx
import pytest
import respx
from ctxgate.agent.models import ToolSpec
from ctxgate.agent.tools import MAX_RESPONSE_BYTES, ToolError, TransientError, check_host, run_tool


def webhook(url: str) -> ToolSpec:
    return ToolSpec.model_validate({"function": {"name": "t"}, "endpoint": {"url": url, "timeout_seconds": 2}})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.0.0.5/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "file:///etc/passwd",
    ],
)
def test_internal_addresses_are_refused_without_an_allowlist(url):
    with pytest.raises(ToolError):
        check_host(url, [])


def test_an_allowlist_admits_only_its_hosts():
    check_host("http://127.0.0.1:9000/hook", ["127.0.0.1"])
    check_host("https://api.tools.example.com/x", ["*.example.com"])
    with pytest.raises(ToolError):
        check_host("https://evil.example.org/x", ["*.example.com"])


@respx.mock
def test_webhook_results_and_failures_are_classified():
    allow = ["hooks.test"]
    respx.post("http://hooks.test/ok").mock(return_value=httpx.Response(200, json={"temp": 21}))
    assert run_tool(webhook("http://hooks.test/ok"), '{"city": "Oslo"}', allow) == '{"temp":21}'
    assert respx.calls.last.request.content == b'{"city":"Oslo"}'
    respx.post("http://hooks.test/busy").mock(return_value=httpx.Response(503))
    with pytest.raises(TransientError):
        run_tool(webhook("http://hooks.test/busy"), "{}", allow)
    respx.post("http://hooks.test/slow").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(TransientError):
        run_tool(webhook("http://hooks.test/slow"), "{}", allow)
    respx.post("http://hooks.test/bad").mock(return_value=httpx.Response(400, text="no such city"))
    with pytest.raises(ToolError, match="no such city"):
        run_tool(webhook("http://hooks.test/bad"), "{}", allow)
    respx.post("http://hooks.test/huge").mock(return_value=httpx.Response(200, content=b"x" * (MAX_RESPONSE_BYTES + 1)))
    with pytest.raises(ToolError, match="over"):
        run_tool(webhook("http://hooks.test/huge"), "{}", allow)
    with pytest.raises(ToolError, match="not JSON"):
        run_tool(webhook("http://hooks.test/ok"), "{nope", allow)


def test_a_tool_needs_exactly_one_place_to_run():
    with pytest.raises(ValueError):
        ToolSpec.model_validate({"function": {"name": "t"}})
    with pytest.raises(ValueError):
        ToolSpec.model_validate(
            {
                "function": {"name": "t"},
                "endpoint": {"url": "https://a.example/x"},
                "lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:f",
            }
        )
