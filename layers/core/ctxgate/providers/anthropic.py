"""Anthropic Messages API over httpx.

The body is built field by field from an allowlist (model, system, messages, max_tokens, temperature, top_p,
stop_sequences, tools, tool_choice); the client's other fields (``GenerationParams.extra``) are never forwarded:
none of OpenAI's extra parameters has a Messages API equivalent the gateway maps.
"""

from __future__ import annotations

import json
from typing import Any

from ctxgate.messages import Completion, FunctionCall, Message, ProviderRequest, ToolCall, Usage
from ctxgate.providers.base import HttpProvider, ProviderRejected, alternate_roles

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
EPHEMERAL = {"type": "ephemeral"}
STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


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
    usage = None
    if raw:
        cached = raw.get("cache_read_input_tokens") or 0
        written = raw.get("cache_creation_input_tokens") or 0
        usage = Usage(
            prompt_tokens=raw.get("input_tokens", 0) + cached + written,
            completion_tokens=raw.get("output_tokens", 0),
            cached_tokens=cached,
        )
    return Completion(message=message, finish_reason=STOP_REASONS.get(data.get("stop_reason", ""), "stop"), usage=usage)


class AnthropicProvider(HttpProvider):
    name = "anthropic"
    default_base_url = DEFAULT_BASE_URL

    def complete(self, request: ProviderRequest) -> Completion:
        headers = {"content-type": "application/json", "anthropic-version": API_VERSION}
        key = self.api_key
        if key:
            headers["x-api-key"] = key
        data = self.post("/v1/messages", to_anthropic(request), headers)
        if data.get("type") == "error":
            raise ProviderRejected(f"anthropic error: {data.get('error')}")
        return from_anthropic(data)
