"""The Bedrock adapter's ``stream()`` on ConverseStream's real wire format: binary ``application/
vnd.amazon.eventstream`` messages, decoded by botocore's own EventStream and parser, served through Stubber (which
validates the request against the real service model)."""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

import boto3
import pytest
from botocore.eventstream import EventStream
from botocore.parsers import EventStreamJSONParser
from botocore.stub import Stubber
from ctxgate.messages import GenerationParams, Message, ProviderRequest, Usage
from ctxgate.providers.base import TransientProviderError
from ctxgate.providers.bedrock import BedrockProvider
from ctxgate.providers.streaming import CompletionBuilder, Finish, TextDelta, ToolCallDelta, UsageReport

MODEL_ID = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return struct.pack("!B", len(raw_name)) + raw_name + struct.pack("!BH", 7, len(raw_value)) + raw_value


def wire_message(headers: dict[str, str], payload: dict[str, Any]) -> bytes:
    """One event-stream message: prelude (total and headers length, CRC32), headers, payload, message CRC32."""
    head = b"".join(_header(k, v) for k, v in headers.items())
    body = json.dumps(payload).encode()
    prelude = struct.pack("!II", 12 + len(head) + len(body) + 4, len(head))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + head + body
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return wire_message({":message-type": "event", ":event-type": kind, ":content-type": "application/json"}, payload)


def exception(kind: str, message: str) -> bytes:
    headers = {":message-type": "exception", ":exception-type": kind, ":content-type": "application/json"}
    return wire_message(headers, {"message": message})


class RawStream:
    """What botocore's EventStream reads: an HTTP body with ``stream()`` (here, one network read per message)."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.closed = False

    def stream(self):
        yield from self.messages

    def close(self) -> None:
        self.closed = True


def converse_stream_response(client, messages: list[bytes]) -> tuple[dict[str, Any], RawStream]:
    """A stub response whose ``stream`` becomes botocore's real EventStream over ``messages`` once the call returns.

    Stubber validates a response against the output shape, where the event stream is modelled as a plain
    structure, so the stub carries an empty one and an ``after-call`` hook (which Stubber's short-circuit still
    fires) puts the real decoder in its place."""
    shape = client.meta.service_model.operation_model("ConverseStream").output_shape.members["stream"]
    raw = RawStream(messages)

    def attach_event_stream(parsed: dict[str, Any], **_: Any) -> None:
        parsed["stream"] = EventStream(raw, shape, EventStreamJSONParser(), "ConverseStream")

    client.meta.events.register_first("after-call.bedrock-runtime.ConverseStream", attach_event_stream)
    return {"stream": {}}, raw


@pytest.fixture
def stubbed():
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber


def test_converse_stream_text_tool_use_usage_and_stop_reason(stubbed):
    client, stubber = stubbed
    response, raw = converse_stream_response(
        client,
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Let me "}}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "check."}}),
            event("contentBlockStop", {"contentBlockIndex": 0}),
            event(
                "contentBlockStart",
                {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}}},
            ),
            event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city": '}}}),
            event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}}),
            event("contentBlockStop", {"contentBlockIndex": 1}),
            event("messageStop", {"stopReason": "tool_use"}),
            event(
                "metadata",
                {"usage": {"inputTokens": 20, "outputTokens": 9, "totalTokens": 29}, "metrics": {"latencyMs": 80}},
            ),
        ],
    )
    stubber.add_response(
        "converse_stream",
        response,
        expected_params={"modelId": MODEL_ID, "messages": [{"role": "user", "content": [{"text": "Weather?"}]}]},
    )
    request = ProviderRequest(upstream_model=MODEL_ID, messages=[Message(role="user", content="Weather?")])

    events = list(BedrockProvider(timeout=5, client=client).stream(request))

    assert events == [
        TextDelta("Let me "),
        TextDelta("check."),
        ToolCallDelta(0, "tooluse_1", "weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        UsageReport(Usage(prompt_tokens=20, completion_tokens=9)),
        Finish("tool_calls"),
    ]
    builder = CompletionBuilder()
    for item in events:
        builder.add(item)
    assert json.loads((builder.build().message.tool_calls or [])[0].function.arguments) == {"city": "Paris"}
    assert raw.closed


def test_an_exception_event_mid_stream_raises_in_the_provider_taxonomy(stubbed):
    client, stubber = stubbed
    response, _ = converse_stream_response(
        client,
        [
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            exception("modelStreamErrorException", "the model stopped"),
        ],
    )
    stubber.add_response("converse_stream", response)
    request = ProviderRequest(
        upstream_model=MODEL_ID, messages=[Message(role="user", content="Hi")], params=GenerationParams(max_tokens=5)
    )
    events = BedrockProvider(timeout=5, client=client).stream(request)

    assert next(events) == TextDelta("Hel")
    with pytest.raises(TransientProviderError, match="ModelStreamErrorException"):
        next(events)


def test_a_throttled_converse_stream_call_is_transient_before_any_event(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("converse_stream", service_error_code="ThrottlingException", http_status_code=429)
    request = ProviderRequest(upstream_model=MODEL_ID, messages=[Message(role="user", content="Hi")])

    with pytest.raises(TransientProviderError):
        next(BedrockProvider(timeout=5, client=client).stream(request))
