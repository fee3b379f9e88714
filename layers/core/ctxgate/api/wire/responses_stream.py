"""Responses API streaming: the internal stream events of a turn (:mod:`ctxgate.providers.streaming`) rendered as
OpenAI's Responses stream events, as they arrive.

Order, as OpenAI sends it and the SDK's ``responses.stream`` helper accumulates it: ``response.created``,
``response.in_progress``; per output item ``response.output_item.added``, then for a message
``response.content_part.added``, ``response.output_text.delta``... ``response.output_text.done``,
``response.content_part.done``, or for a function call ``response.function_call_arguments.delta``...
``.done``; ``response.output_item.done``; then ``response.completed`` (or ``response.incomplete``) carrying the stored
response. A failure after the first event ends the stream with ``response.failed`` (its ``error`` says why; nothing
was stored). Every event has its ``sequence_number``. Item ids are the ones the stored response will have.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ctxgate.api.wire.responses import item_body, response_body
from ctxgate.providers.streaming import StreamEvent, StreamFailed, TextDelta, ToolCallDelta
from ctxgate.responses.service import ResponseStream


@dataclass
class _Call:
    output_index: int
    item: dict[str, Any]
    arguments: list[str] = field(default_factory=list)


class _Renderer:
    def __init__(self, opened: ResponseStream) -> None:
        self.opened = opened
        self.sequence = 0
        self.outputs = 0
        self.message: dict[str, Any] | None = None
        self.message_index = 0
        self.text: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.done_ids: set[str] = set()

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def text_delta(self, delta: str) -> Iterator[dict[str, Any]]:
        if self.message is None:
            item_id = self.opened.item_id("message", 0)
            self.message = {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress"}
            self.message_index = self.outputs
            self.outputs += 1
            yield self.event(
                "response.output_item.added", output_index=self.message_index, item={**self.message, "content": []}
            )
            yield self.event("response.content_part.added", **self._where(), part=_text_part(""))
        self.text.append(delta)
        yield self.event("response.output_text.delta", **self._where(), delta=delta, logprobs=[])

    def close_message(self) -> Iterator[dict[str, Any]]:
        if self.message is None or self.message["id"] in self.done_ids:
            return
        text = "".join(self.text)
        yield self.event("response.output_text.done", **self._where(), text=text, logprobs=[])
        yield self.event("response.content_part.done", **self._where(), part=_text_part(text))
        item = {**self.message, "status": "completed", "content": [_text_part(text)]}
        yield self.event("response.output_item.done", output_index=self.message_index, item=item)
        self.done_ids.add(self.message["id"])

    def call_delta(self, delta: ToolCallDelta) -> Iterator[dict[str, Any]]:
        call = self.calls.get(delta.index)
        if call is None:
            yield from self.close_message()
            item = {
                "id": self.opened.item_id("function_call", delta.index + 1),
                "type": "function_call",
                "call_id": delta.id or "",
                "name": delta.name or "",
                "arguments": "",
                "status": "in_progress",
            }
            call = self.calls[delta.index] = _Call(self.outputs, item)
            self.outputs += 1
            yield self.event("response.output_item.added", output_index=call.output_index, item=item)
        if delta.arguments:
            call.arguments.append(delta.arguments)
            yield self.event(
                "response.function_call_arguments.delta",
                item_id=call.item["id"],
                output_index=call.output_index,
                delta=delta.arguments,
            )

    def close_calls(self) -> Iterator[dict[str, Any]]:
        for call in self.calls.values():
            arguments = "".join(call.arguments)
            where = {"item_id": call.item["id"], "output_index": call.output_index}
            yield self.event(
                "response.function_call_arguments.done", **where, name=call.item["name"], arguments=arguments
            )
            item = {**call.item, "arguments": arguments, "status": "completed"}
            yield self.event("response.output_item.done", output_index=call.output_index, item=item)
            self.done_ids.add(call.item["id"])

    def _where(self) -> dict[str, Any]:
        assert self.message is not None
        return {"item_id": self.message["id"], "output_index": self.message_index, "content_index": 0}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def response_stream_events(opened: ResponseStream, events: Iterator[StreamEvent]) -> Iterator[dict[str, Any]]:
    """The Responses events of an opened response whose turn yields ``events`` (see the module docstring)."""
    render = _Renderer(opened)
    skeleton = opened.skeleton
    yield render.event("response.created", response=response_body(skeleton, status="in_progress", output=False))
    yield render.event("response.in_progress", response=response_body(skeleton, status="in_progress", output=False))
    failed: StreamFailed | None = None
    for event in events:
        if isinstance(event, TextDelta):
            yield from render.text_delta(event.text)
        elif isinstance(event, ToolCallDelta):
            yield from render.call_delta(event)
        elif isinstance(event, StreamFailed):
            failed = event
            break
    record = opened.end()
    if failed is not None or record is None:
        error = {"code": (failed.code if failed else None) or "server_error", "message": _message(failed)}
        body = response_body(skeleton, status="failed", output=False, error=error)
        yield render.event("response.failed", response=body)
        return
    yield from render.close_message()
    yield from render.close_calls()
    for item in record.output:  # an output no delta announced (an empty reply) is still listed
        if item.id not in render.done_ids:
            index = render.outputs
            render.outputs += 1
            yield render.event("response.output_item.added", output_index=index, item=item_body(item))
            yield render.event("response.output_item.done", output_index=index, item=item_body(item))
    final = "response.incomplete" if record.status == "incomplete" else "response.completed"
    yield render.event(final, response=response_body(record))


def _message(failed: StreamFailed | None) -> str:
    return failed.message if failed is not None else "The response failed; nothing was stored."


def sse_chunks(events: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    for event in events:
        yield f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
