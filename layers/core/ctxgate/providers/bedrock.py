"""Amazon Bedrock through the Converse API (boto3 ``bedrock-runtime``).

The call's arguments are built from an allowlist (modelId, system, messages, inferenceConfig, toolConfig); the
client's other fields (``GenerationParams.extra``) are never forwarded, and ``additionalModelRequestFields`` (the
Converse API's pass-through to the model) is never set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ctxgate.messages import Completion, FinishReason, FunctionCall, Message, ProviderRequest, ToolCall, Usage
from ctxgate.providers.base import (
    ProviderRejected,
    ProviderUnusable,
    TransientProviderError,
    alternate_roles,
    rejection_reason,
)
from ctxgate.providers.streaming import Finish, StreamEvent, TextDelta, ToolCallDelta, UsageReport

TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ServiceQuotaExceededException",
        "ModelStreamErrorException",
    }
)
REJECTED_CODES = frozenset({"ValidationException", "ModelErrorException"})
CACHE_POINT = {"cachePoint": {"type": "default"}}
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def _content(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": message.tool_call_id or "", "content": [{"text": message.text()}]}}]
    blocks: list[dict[str, Any]] = []
    if message.text():
        blocks.append({"text": message.text()})
    for call in message.tool_calls or ():
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": call.function.arguments}
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}})
    return blocks


def to_converse(request: ProviderRequest) -> dict[str, Any]:
    """Keyword arguments for ``bedrock-runtime.converse``."""
    kwargs: dict[str, Any] = {"modelId": request.upstream_model}
    points = set(request.cache_points)
    system: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if message.role == "system" and message.text():
            system.append({"text": message.text()})
            if index in points:
                system.append(CACHE_POINT)
    if system:
        kwargs["system"] = system

    def blocks(index: int, message: Message) -> list[dict[str, Any]]:
        out = _content(message)
        return [*out, CACHE_POINT] if index in points and out else out

    kwargs["messages"] = alternate_roles(request.messages, blocks)
    params = request.params
    inference: dict[str, Any] = {}
    if params.output_limit() is not None:
        inference["maxTokens"] = params.output_limit()
    if params.temperature is not None:
        inference["temperature"] = params.temperature
    if params.top_p is not None:
        inference["topP"] = params.top_p
    if params.stop:
        inference["stopSequences"] = params.stop
    if inference:
        kwargs["inferenceConfig"] = inference
    if params.tools:
        tool_config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description") or t["function"]["name"],
                        "inputSchema": {"json": t["function"].get("parameters") or {"type": "object"}},
                    }
                }
                for t in params.tools
                if t.get("type") == "function"
            ]
        }
        choice = params.tool_choice
        if isinstance(choice, dict):
            tool_config["toolChoice"] = {"tool": {"name": choice.get("function", {}).get("name", "")}}
        elif choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif choice == "auto":
            tool_config["toolChoice"] = {"auto": {}}
        kwargs["toolConfig"] = tool_config
    return kwargs


def from_converse(response: dict[str, Any]) -> Completion:
    blocks = response.get("output", {}).get("message", {}).get("content", [])
    text = "".join(b["text"] for b in blocks if "text" in b)
    calls = [
        ToolCall(
            id=b["toolUse"]["toolUseId"],
            function=FunctionCall(name=b["toolUse"]["name"], arguments=json.dumps(b["toolUse"].get("input", {}))),
        )
        for b in blocks
        if "toolUse" in b
    ]
    raw = response.get("usage") or {}
    usage = _usage(raw) if raw else None
    message = Message(role="assistant", content=text or (None if calls else ""), tool_calls=calls or None)
    return Completion(
        message=message, finish_reason=STOP_REASONS.get(response.get("stopReason", ""), "stop"), usage=usage
    )


def _usage(raw: dict[str, Any]) -> Usage:
    return Usage(
        prompt_tokens=raw.get("inputTokens", 0)
        + raw.get("cacheReadInputTokens", 0)
        + raw.get("cacheWriteInputTokens", 0),
        completion_tokens=raw.get("outputTokens", 0),
        cached_tokens=raw.get("cacheReadInputTokens", 0),
        cache_write_tokens=raw.get("cacheWriteInputTokens", 0),
    )


def _provider_error(error: Exception) -> Exception:
    """A botocore failure in the provider error taxonomy (an ``EventStreamError`` mid-stream is a ClientError)."""
    from botocore.exceptions import ClientError

    if not isinstance(error, ClientError):
        return TransientProviderError(f"bedrock transport error: {error!r}")
    code = error.response.get("Error", {}).get("Code", "")
    code = code[:1].upper() + code[1:]  # exception events mid-stream name their type in camelCase
    message = f"bedrock {code}: {error.response.get('Error', {}).get('Message', '')}"
    if code in TRANSIENT_CODES:
        return TransientProviderError(message)
    if code in REJECTED_CODES:
        return ProviderRejected(message, reason=rejection_reason(message))
    return ProviderUnusable(message)


class BedrockProvider:
    def __init__(self, *, timeout: float, client: Any = None) -> None:
        self.timeout = timeout
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # botocore's own retries are off: ctxgate's retry helper owns backoff, deadline and fallbacks.
            config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=self.timeout)
            self._client = boto3.client("bedrock-runtime", config=config)
        return self._client

    def complete(self, request: ProviderRequest) -> Completion:
        from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

        try:
            response = self.client.converse(**to_converse(request))
        except (ClientError, ReadTimeoutError, ConnectionError) as error:
            raise _provider_error(error) from error
        return from_converse(response)

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        """``ConverseStream``: botocore's event stream decoded event by event (``contentBlockStart/Delta``,
        ``messageStop``, ``metadata``). A ``toolUse`` block becomes tool call ``n`` (its ordinal among the tool
        blocks), its ``input`` fragments the call's arguments. An exception event mid-stream raises like
        :meth:`complete`; a stream without ``messageStop`` raises :class:`TransientProviderError`. Closing the
        iterator closes the event stream."""
        from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

        failures = (ClientError, ReadTimeoutError, ConnectionError)
        try:
            events = self.client.converse_stream(**to_converse(request))["stream"]
        except failures as error:
            raise _provider_error(error) from error
        tool_index: dict[int, int] = {}
        stop: FinishReason | None = None
        try:
            for event in events:
                if "contentBlockStart" in event:
                    started = event["contentBlockStart"]
                    tool = (started.get("start") or {}).get("toolUse")
                    if tool is not None:
                        ordinal = tool_index.setdefault(started.get("contentBlockIndex", 0), len(tool_index))
                        yield ToolCallDelta(ordinal, tool.get("toolUseId"), tool.get("name"))
                elif "contentBlockDelta" in event:
                    block = event["contentBlockDelta"]
                    delta = block.get("delta") or {}
                    if delta.get("text"):
                        yield TextDelta(delta["text"])
                    elif "toolUse" in delta and (delta["toolUse"] or {}).get("input"):
                        ordinal = tool_index.get(block.get("contentBlockIndex", 0))
                        if ordinal is not None:
                            yield ToolCallDelta(ordinal, arguments=delta["toolUse"]["input"])
                elif "messageStop" in event:
                    stop = STOP_REASONS.get(event["messageStop"].get("stopReason", ""), "stop")
                elif "metadata" in event and event["metadata"].get("usage"):
                    yield UsageReport(_usage(event["metadata"]["usage"]))
        except failures as error:
            raise _provider_error(error) from error
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if stop is None:
            raise TransientProviderError("bedrock stream ended without messageStop")
        yield Finish(stop)
