"""Anthropic Messages API over httpx.

The body is built field by field from an allowlist (model, system, messages, max_tokens, temperature, top_p,
top_k, stop_sequences, tools, tool_choice); of the client's other fields (``GenerationParams.extra``) only ``top_k``
is forwarded (Anthropic's own sampling parameter, which Messages API clients send): none of OpenAI's extra
parameters has a Messages API equivalent the gateway maps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ctxgate.messages import Completion, FinishReason, FunctionCall, Message, ProviderRequest, ToolCall, Usage
from ctxgate.providers.base import HttpProvider, ProviderRejected, TransientProviderError, alternate_roles
from ctxgate.providers.streaming import Finish, StreamEvent, TextDelta, ToolCallDelta, UsageReport

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
EPHEMERAL = {"type": "ephemeral"}
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
}


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id or "", "content": message.text()}]
    blocks: list[dict[str, Any]] = []
    if message.text():
        blocks.append({"type": "text", "text": message.text()})
    for call in message.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": _arguments(call)})
    return blocks


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": call.function.arguments}
    return value if isinstance(value, dict) else {"value": value}


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": choice.get("function", {}).get("name", "")}
    return {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}.get(
        choice, {"type": "auto"}
    )


def to_anthropic(request: ProviderRequest) -> dict[str, Any]:
    """Convert to a Messages API body: top-level system, alternating roles, tool results as user blocks."""
    points = set(request.cache_points)

    def blocks(index: int, message: Message) -> list[dict[str, Any]]:
        out = _blocks(message)
        if index in points and out:
            out[-1] = {**out[-1], "cache_control": EPHEMERAL}
        return out

    systems = [(i, m.text()) for i, m in enumerate(request.messages) if m.role == "system" and m.text()]
    system: str | list[dict[str, Any]] = "\n\n".join(text for _, text in systems)
    if points.intersection(i for i, _ in systems):
        system = [
            {"type": "text", "text": text, **({"cache_control": EPHEMERAL} if i in points else {})}
            for i, text in systems
        ]
    turns = alternate_roles(request.messages, blocks)
    params = request.params
    body: dict[str, Any] = {
        "model": request.upstream_model,
        "messages": turns,
        "max_tokens": params.output_limit() or DEFAULT_MAX_TOKENS,
    }
    if system:
        body["system"] = system
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if isinstance(params.extra.get("top_k"), int):  # Anthropic's own sampling parameter (its Messages API's clients)
        body["top_k"] = params.extra["top_k"]
    if params.stop:
        body["stop_sequences"] = params.stop
    if params.tools:
        body["tools"] = [
            {
                "name": t["function"]["name"],
                "description": t["function"].get("description", ""),
                "input_schema": t["function"].get("parameters") or {"type": "object", "properties": {}},
            }
            for t in params.tools
            if t.get("type") == "function"
        ]
        if params.tool_choice is not None:
            body["tool_choice"] = _tool_choice(params.tool_choice)
    return body


def from_anthropic(data: dict[str, Any]) -> Completion:
    text = "".join(b.get("text", "") for b in data.get("content", []) if b.get("type") == "text")
    calls = [
        ToolCall(id=b["id"], function=FunctionCall(name=b["name"], arguments=json.dumps(b.get("input", {}))))
        for b in data.get("content", [])
        if b.get("type") == "tool_use"
    ]
    message = Message(role="assistant", content=text or (None if calls else ""), tool_calls=calls or None)
    raw = data.get("usage") or {}
    usage = _usage(raw) if raw else None
    return Completion(message=message, finish_reason=STOP_REASONS.get(data.get("stop_reason", ""), "stop"), usage=usage)


def _usage(raw: dict[str, Any]) -> Usage:
    cached = raw.get("cache_read_input_tokens") or 0
    written = raw.get("cache_creation_input_tokens") or 0
    return Usage(
        prompt_tokens=(raw.get("input_tokens") or 0) + cached + written,
        completion_tokens=raw.get("output_tokens") or 0,
        cached_tokens=cached,
        cache_write_tokens=written,
    )


class AnthropicProvider(HttpProvider):
    name = "anthropic"
    default_base_url = DEFAULT_BASE_URL

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        key = self.api_key
        if key:
            headers["x-api-key"] = key
        return headers

    def complete(self, request: ProviderRequest) -> Completion:
        data = self.post("/v1/messages", to_anthropic(request), self._headers())
        if data.get("type") == "error":
            raise ProviderRejected(f"anthropic error: {data.get('error')}")
        return from_anthropic(data)

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        """The Messages API's SSE (``message_start``, ``content_block_*``, ``message_delta``, ``message_stop``).

        Text blocks become :class:`TextDelta`; each ``tool_use`` block becomes tool call ``n`` (its ordinal among
        the tool blocks) with its ``input_json_delta`` fragments as arguments. Usage combines ``message_start``'s
        input counts with ``message_delta``'s output count. An ``error`` event or a stream that ends before
        ``message_stop`` raises :class:`TransientProviderError`."""
        tool_index: dict[int, int] = {}
        started: dict[str, Any] = {}
        output_tokens = 0
        stop: FinishReason = "stop"
        for sse in self.post_stream("/v1/messages", {**to_anthropic(request), "stream": True}, self._headers()):
            if sse.event == "ping" or not sse.data:
                continue
            try:
                data = json.loads(sse.data)
            except ValueError as error:
                raise TransientProviderError(f"anthropic sent an unreadable event: {sse.data[:200]}") from error
            kind = data.get("type", sse.event)
            if kind == "message_start":
                started = (data.get("message") or {}).get("usage") or {}
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    ordinal = tool_index.setdefault(int(data.get("index", 0)), len(tool_index))
                    yield ToolCallDelta(ordinal, block.get("id"), block.get("name"))
                elif block.get("text"):
                    yield TextDelta(block["text"])
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield TextDelta(delta["text"])
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
                    ordinal = tool_index.get(int(data.get("index", 0)))
                    if ordinal is not None:
                        yield ToolCallDelta(ordinal, arguments=delta["partial_json"])
            elif kind == "message_delta":
                stop = STOP_REASONS.get((data.get("delta") or {}).get("stop_reason") or "", "stop")
                output_tokens = (data.get("usage") or {}).get("output_tokens") or output_tokens
            elif kind == "message_stop":
                yield UsageReport(_usage({**started, "output_tokens": output_tokens}))
                yield Finish(stop)
                return
            elif kind == "error":
                raise TransientProviderError(f"anthropic stream error: {str(data.get('error'))[:300]}")
        raise TransientProviderError("anthropic stream ended before message_stop")
