"""Anthropic Messages wire format, response side: a completion as a ``Message`` object, as the Server-Sent Events
of a streamed message, and a ctxgate error in Anthropic's error shape.

Usage: ctxgate's input tokens include those read from (and written to) a provider's prompt cache, while
Anthropic's ``input_tokens`` counts only the rest; so ``input_tokens`` here is the total less
``cache_read_input_tokens`` and ``cache_creation_input_tokens``, and the three add up to the prompt as in
Anthropic's API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ctxgate.messages import Completion, FinishReason, ToolCall, Usage
from ctxgate.providers.streaming import Finish, StreamEvent, StreamFailed, TextDelta, ToolCallDelta

STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def stop_reason(completion: Completion) -> str:
    return STOP_REASONS.get(completion.finish_reason, "end_turn")


def usage_body(usage: Usage) -> dict[str, int]:
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    written = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    return {
        "input_tokens": usage.prompt_tokens - cached - written,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": written,
    }


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the ``input`` object of a ``tool_use`` block (arguments that are not a JSON object
    are kept whole under ``_raw``, so nothing the model produced is lost)."""
    try:
        value = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError:
        return {"_raw": call.function.arguments}
    return value if isinstance(value, dict) else {"_raw": call.function.arguments}


def content_blocks(completion: Completion) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = completion.message.text()
    if text:
        blocks.append({"type": "text", "text": text})
    for call in completion.message.tool_calls or ():
        blocks.append({"type": "tool_use", "id": call.id, "name": call.function.name, "input": tool_input(call)})
    return blocks


def message_body(completion: Completion, usage: Usage, model: str, *, id: str | None = None) -> dict[str, Any]:
    """The ``Message`` object of a finished completion."""
    return {
        "id": id or message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content_blocks(completion),
        "stop_reason": stop_reason(completion),
        "stop_sequence": None,
        "usage": usage_body(usage),
    }


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class MessageEvents:
    """Renders one assistant message as Anthropic's event sequence, piece by piece: ``message_start`` and a
    ``ping``, then each content block (``content_block_start``, its ``text_delta`` or ``input_json_delta`` events,
    ``content_block_stop``), then ``message_delta`` (stop reason and usage) and ``message_stop``.

    Each method returns the SSE text of the events it produced. Text and tool call pieces may arrive interleaved;
    a new block closes the open one, as in Anthropic's own streams (blocks never interleave there)."""

    def __init__(self, model: str, *, id: str | None = None) -> None:
        self.model = model
        self.id = id or message_id()
        self._index = -1
        self._open: tuple[str, int | None] | None = None
        """The open block: ("text", None) or ("tool_use", the tool call's index)."""

    def start(self, input_usage: Usage) -> str:
        """``message_start`` with the input counts known before generation (output tokens still 0)."""
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage_body(input_usage), "output_tokens": 0},
        }
        return sse("message_start", {"type": "message_start", "message": message}) + sse("ping", {"type": "ping"})

    def text(self, delta: str) -> str:
        if not delta:
            return ""
        out = ""
        if self._open != ("text", None):
            out += self._open_block(("text", None), {"type": "text", "text": ""})
        return out + self._delta({"type": "text_delta", "text": delta})

    def tool_call(self, index: int, id: str | None, name: str | None, arguments: str) -> str:
        """A piece of tool call ``index``: its first piece names it (``id``, ``name``), later ones continue its
        JSON arguments."""
        out = ""
        if self._open != ("tool_use", index):
            block = {"type": "tool_use", "id": id or "", "name": name or "", "input": {}}
            out += self._open_block(("tool_use", index), block)
        if arguments:
            out += self._delta({"type": "input_json_delta", "partial_json": arguments})
        return out

    def finish(self, reason: str, usage: Usage) -> str:
        """Close the open block, then ``message_delta`` with the stop reason and the final usage, and
        ``message_stop``."""
        out = self._close()
        delta = {"stop_reason": reason, "stop_sequence": None}
        out += sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_body(usage)})
        return out + sse("message_stop", {"type": "message_stop"})

    def _open_block(self, key: tuple[str, int | None], block: dict[str, Any]) -> str:
        out = self._close()
        self._index += 1
        self._open = key
        start = {"type": "content_block_start", "index": self._index, "content_block": block}
        return out + sse("content_block_start", start)

    def _delta(self, delta: dict[str, Any]) -> str:
        return sse("content_block_delta", {"type": "content_block_delta", "index": self._index, "delta": delta})

    def _close(self) -> str:
        if self._open is None:
            return ""
        self._open = None
        return sse("content_block_stop", {"type": "content_block_stop", "index": self._index})


def message_event_stream(
    events: Iterable[StreamEvent], model: str, *, input_usage: Usage, final_usage: Callable[[], Usage | None]
) -> Iterator[bytes]:
    """A streamed turn's events as Anthropic's Server-Sent Events, one or more per event, as they come.

    ``message_start`` carries ``input_usage`` (the gateway's count of the prompt, known before generation); text
    and tool-call deltas become content blocks; the :class:`Finish` reason becomes ``message_delta``'s stop reason,
    sent with ``final_usage()`` (read once the events are exhausted: the turn's usage, the provider's when it
    reported one) before ``message_stop``. A :class:`StreamFailed` ends the body with an ``error`` event, which the
    anthropic SDK raises as the status's exception."""
    writer = MessageEvents(model)
    yield writer.start(input_usage).encode()
    reason = "end_turn"
    for event in events:
        if isinstance(event, TextDelta):
            out = writer.text(event.text)
        elif isinstance(event, ToolCallDelta):
            out = writer.tool_call(event.index, event.id, event.name, event.arguments)
        elif isinstance(event, Finish):
            reason, out = STOP_REASONS.get(event.reason, "end_turn"), ""
        elif isinstance(event, StreamFailed):
            failure = {"message": event.message, "type": event.type, "code": event.code}
            yield error_event(event.status, {"error": failure}).encode()
            return
        else:  # UsageReport: the final usage is the turn's, read below
            out = ""
        if out:
            yield out.encode()
    yield writer.finish(reason, final_usage() or input_usage).encode()


def error_type(status: int) -> str:
    return ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, openai_body: dict[str, Any]) -> dict[str, Any]:
    """A ctxgate error body (``{"error": {"message", "type", "code", "param"?, "request_id"?}}``) in Anthropic's
    shape: ``{"type": "error", "error": {"type", "message", "code", "param"?}, "request_id"}``, its type chosen
    by status as Anthropic's API does (ctxgate's ``code`` is kept: it tells apart, say, an unknown model from an
    unknown session)."""
    source = openai_body.get("error")
    source = source if isinstance(source, dict) else {}
    error: dict[str, Any] = {"type": error_type(status), "message": str(source.get("message") or "Request failed.")}
    for name in ("code", "param"):
        if source.get(name) is not None:
            error[name] = source[name]
    body: dict[str, Any] = {"type": "error", "error": error}
    if source.get("request_id"):
        body["request_id"] = source["request_id"]
    return body


def error_event(status: int, openai_body: dict[str, Any]) -> str:
    """An ``error`` event: how a stream that already started reports a failure."""
    return sse("error", error_body(status, openai_body))
