"""The one internal stream-event model: what every provider adapter's ``stream()`` yields.

Interface (stable; the Chat Completions, Responses and Messages wire formats all render from it)::

    Provider.stream(request: ProviderRequest) -> Iterator[StreamEvent]

    StreamEvent = TextDelta | ToolCallDelta | UsageReport | Finish | StreamFailed

- :class:`TextDelta` - a piece of the assistant's text, in order.
- :class:`ToolCallDelta` - a piece of tool call ``index`` (0, 1, ... in the order the calls start). The first delta
  of a call carries its ``id`` and ``name``; every delta may carry a fragment of its JSON ``arguments``, which
  concatenate in order.
- :class:`UsageReport` - the call's token usage (at most one per stream, usually near its end; absent when the
  upstream reported none - the gateway then counts tokens itself).
- :class:`Finish` - why generation stopped; the last event of a successful stream.
- :class:`StreamFailed` - the stream broke after events were already delivered (never yielded by adapters: they
  raise the :mod:`ctxgate.providers.base` errors; the gateway turns a failure after the first byte into this
  event, with a client-safe message).

Adapters raise :class:`~ctxgate.providers.base.TransientProviderError` / ``ProviderRejected`` /
``ProviderUnusable`` exactly as ``complete()`` does. A failure before the first event is retried and falls back
(:meth:`ctxgate.providers.registry.ModelRouter.stream`); a failure after it cannot be, because the client already
has bytes.

:class:`CompletionBuilder` folds a stream back into the :class:`~ctxgate.messages.Completion` that ``complete()``
would have returned (what a stateful turn stores and the cache keeps), and :func:`replay` turns a completion into
events (a cache hit, or a provider without native streaming).

The events are slotted dataclasses rather than pydantic models: they are internal, already-validated values created
once per upstream chunk, on the hot path of time to first token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ctxgate.messages import Completion, FinishReason, FunctionCall, Message, ToolCall, Usage


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class UsageReport:
    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason = "stop"


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The stream ended in an error after the first byte. ``message`` is safe to show to the client;
    ``type``/``code`` follow the OpenAI error object."""

    message: str
    type: str = "api_error"
    code: str | None = None
    status: int = 502


StreamEvent = TextDelta | ToolCallDelta | UsageReport | Finish | StreamFailed


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class CompletionBuilder:
    """Accumulates stream events into a :class:`Completion`. Feed every event to :meth:`add`; :meth:`build` at
    the end. Tool calls are keyed by their delta ``index``, so interleaved deltas of parallel calls reassemble."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _CallParts] = {}
        self.usage: Usage | None = None
        self.finish_reason: FinishReason | None = None

    def add(self, event: StreamEvent) -> None:
        if isinstance(event, TextDelta):
            self._text.append(event.text)
        elif isinstance(event, ToolCallDelta):
            parts = self._calls.setdefault(event.index, _CallParts())
            parts.id = event.id or parts.id
            parts.name = event.name or parts.name
            if event.arguments:
                parts.arguments.append(event.arguments)
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, Finish):
            self.finish_reason = event.reason

    @property
    def text(self) -> str:
        return "".join(self._text)

    def build(self) -> Completion:
        calls = [
            ToolCall(id=p.id, function=FunctionCall(name=p.name, arguments="".join(p.arguments) or "{}"))
            for _, p in sorted(self._calls.items())
        ]
        text = self.text
        message = Message(role="assistant", content=text or (None if calls else ""), tool_calls=calls or None)
        reason = self.finish_reason or ("tool_calls" if calls else "stop")
        return Completion(message=message, finish_reason=reason, usage=self.usage)


_WORDS = re.compile(r"\S+\s*|\s+")


def words(text: str) -> list[str]:
    """``text`` cut after each word's trailing whitespace; the pieces concatenate back to ``text`` exactly."""
    return _WORDS.findall(text)


def replay(completion: Completion, *, usage: Usage | None = None) -> Iterator[StreamEvent]:
    """A finished completion as the events a stream of it would have produced: its text word by word, each tool
    call whole, its usage (``usage`` if given, else the completion's), then its finish reason."""
    for piece in words(completion.message.text()):
        yield TextDelta(piece)
    for index, call in enumerate(completion.message.tool_calls or ()):
        yield ToolCallDelta(index, call.id, call.function.name, call.function.arguments)
    reported = usage or completion.usage
    if reported is not None:
        yield UsageReport(reported)
    yield Finish(completion.finish_reason)
