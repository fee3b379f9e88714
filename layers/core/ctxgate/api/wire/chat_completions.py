"""OpenAI Chat Completions wire format: request validation and response/stream rendering."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, GenerationParams, Message, Usage
from ctxgate.providers.streaming import Finish, StreamEvent, StreamFailed, TextDelta, ToolCallDelta


class WireMessage(Message):
    """A client message: ctxgate accepts ``"pin": true`` beside role and content to pin it to the session."""

    pin: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[WireMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None

    def chat_messages(self) -> list[Message]:
        return [Message.model_validate(m.model_dump(exclude={"pin"})) for m in self.messages]

    def pinned(self) -> list[str]:
        return [m.text() for m in self.messages if m.pin and m.role != "system"]

    def params(self) -> GenerationParams:
        """The generation parameters. The client's other fields travel in ``extra``; each provider adapter forwards
        only those on its own allowlist and drops the rest (a fallback may be another provider, so a field is not
        refused here for one provider's sake)."""
        extra = dict(self.model_extra or {})
        if self.max_completion_tokens is not None:
            extra["max_completion_tokens"] = self.max_completion_tokens
        return GenerationParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop,
            seed=self.seed,
            tools=self.tools,
            tool_choice=self.tool_choice,
            response_format=self.response_format,
            extra=extra,
        )


def parse_chat_request(body: str) -> ChatCompletionRequest:
    """Validate a request body. Raises :class:`InvalidRequest` naming the first offending parameter."""
    try:
        request = ChatCompletionRequest.model_validate_json(body or "")
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise InvalidRequest(f"The request body is not valid JSON: {first['msg']}", code="invalid_json") from None
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"Invalid value for {param or 'body'}: {first['msg']}", param=param) from None
    for index, message in enumerate(request.messages):
        if message.role in ("user", "system") and not message.text():
            raise InvalidRequest(f"messages[{index}] ({message.role}) needs non-empty content.", param="messages")
        if message.role == "tool" and not message.tool_call_id:
            raise InvalidRequest(f"messages[{index}] (tool) needs a tool_call_id.", param="messages")
    return request


def _usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def completion_body(completion: Completion, usage: Usage, model: str) -> dict[str, Any]:
    message = completion.message.model_dump(exclude_none=True, include={"role", "content", "tool_calls"})
    message.setdefault("content", None)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": completion.finish_reason, "logprobs": None}],
        "usage": _usage_body(usage),
    }


def completion_chunks(
    events: Iterable[StreamEvent], model: str, *, include_usage: bool, final_usage: Callable[[], Usage | None]
) -> Iterator[bytes]:
    """Server-Sent Events of ``chat.completion.chunk`` objects, one event per stream event, as they come.

    The first chunk carries the role; text and tool-call deltas follow as they arrive; :class:`Finish` becomes the
    chunk with ``finish_reason``; with ``include_usage`` a last chunk with empty ``choices`` carries the usage
    (``final_usage()``, read once the events are exhausted: the turn's counted usage when the upstream gave none);
    then ``data: [DONE]``. A :class:`StreamFailed` becomes ``data: {"error": {...}}`` (which the openai SDK raises
    as ``APIError``) and ends the body without ``[DONE]``."""
    head = json.dumps(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
        },
        separators=(",", ":"),
    )[:-1]  # the shared fields, left open so that each chunk appends its own

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return f"data: {head},{json.dumps({'choices': [choice]}, separators=(',', ':'))[1:]}\n\n".encode()

    yield chunk({"role": "assistant", "content": ""})
    for event in events:
        if isinstance(event, TextDelta):
            yield chunk({"content": event.text})
        elif isinstance(event, ToolCallDelta):
            call: dict[str, Any] = {"index": event.index}
            if event.id is not None:
                call.update(id=event.id, type="function")
            function = {"arguments": event.arguments}
            if event.name is not None:
                function["name"] = event.name
            yield chunk({"tool_calls": [{**call, "function": function}]})
        elif isinstance(event, Finish):
            yield chunk({}, event.reason)
        elif isinstance(event, StreamFailed):
            error = {"message": event.message, "type": event.type, "code": event.code}
            yield f"data: {json.dumps({'error': error}, separators=(',', ':'))}\n\n".encode()
            return
    usage = final_usage() if include_usage else None
    if usage is not None:
        body = json.dumps({"choices": [], "usage": _usage_body(usage)}, separators=(",", ":"))[1:]
        yield f"data: {head},{body}\n\n".encode()
    yield b"data: [DONE]\n\n"
