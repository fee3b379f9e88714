"""The domain side of running a tool: the model's arguments, the dispatch by kind, and what a tool spec may say."""

from __future__ import annotations

from typing import Any

import pytest
from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError
from ctxgate.agent.tools import ToolDispatcher, idempotency_key, parse_arguments


class Recording:
    def __init__(self, name: str) -> None:
        self.name = name
        self.checked: list[str] = []
        self.ran: list[tuple[str, dict[str, Any], str]] = []

    def check(self, spec: ToolSpec) -> None:
        self.checked.append(spec.function.name)

    def run(self, spec: ToolSpec, arguments: dict[str, Any], *, idempotency_key: str) -> str:
        self.ran.append((spec.function.name, arguments, idempotency_key))
        return self.name


WEBHOOK = ToolSpec.model_validate({"function": {"name": "w"}, "endpoint": {"url": "https://tools.example/w"}})
FUNCTION = ToolSpec.model_validate(
    {"function": {"name": "f"}, "lambda_arn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
)


def test_each_tool_goes_to_the_runner_for_its_kind():
    webhook, function = Recording("webhook"), Recording("function")
    tools = ToolDispatcher(webhook=webhook, function=function)
    tools.check(WEBHOOK)
    tools.check(FUNCTION)
    assert tools.run(WEBHOOK, {"a": 1}, idempotency_key="r:1") == "webhook"
    assert tools.run(FUNCTION, {}, idempotency_key="r:2") == "function"
    assert (webhook.checked, function.checked) == (["w"], ["f"])
    assert (webhook.ran, function.ran) == ([("w", {"a": 1}, "r:1")], [("f", {}, "r:2")])


def test_the_idempotency_key_names_the_run_and_the_tool_call():
    assert idempotency_key("run_abc", "call_1") == "run_abc:call_1"


@pytest.mark.parametrize(("raw", "match"), [("{nope", "not JSON"), ("[1, 2]", "JSON object")])
def test_arguments_must_be_a_json_object(raw, match):
    with pytest.raises(ToolError, match=match):
        parse_arguments(raw)


def test_empty_arguments_are_an_empty_object():
    assert parse_arguments("") == {}


def test_a_tool_needs_exactly_one_place_to_run():
    with pytest.raises(ValueError):
        ToolSpec.model_validate({"function": {"name": "t"}})
    with pytest.raises(ValueError):
        ToolSpec.model_validate({**WEBHOOK.model_dump(), "lambda_arn": FUNCTION.lambda_arn})


@pytest.mark.parametrize("header", ["Host", "idempotency-key", "Content-Length", "Transfer-Encoding"])
def test_a_webhook_may_not_set_the_headers_the_gateway_sets(header):
    with pytest.raises(ValueError, match="may not set"):
        ToolSpec.model_validate(
            {"function": {"name": "t"}, "endpoint": {"url": "https://tools.example/x", "headers": {header: "x"}}}
        )


@pytest.mark.parametrize("headers", [{"X-Key": "a\r\nHost: evil"}, {"Bad Name": "x"}])
def test_a_webhook_header_must_be_a_valid_http_header(headers):
    with pytest.raises(ValueError, match="not a valid HTTP header"):
        ToolSpec.model_validate(
            {"function": {"name": "t"}, "endpoint": {"url": "https://tools.example/x", "headers": headers}}
        )
