"""A streamed chat turn: :class:`ChatStream`, what ``ChatService.stateless_stream/stateful_stream`` return.

Interface (stable; every wire format's streaming variant renders from it)::

    stream = chat_service().stateless_stream(caller, request)   # or .stateful_stream(caller, session_id, request)
    stream.head        # ChatStreamHead: served_by, session id, the turn's future seq, plan, cache, rate limits
    for event in stream:   # ctxgate.providers.streaming events: TextDelta, ToolCallDelta, UsageReport, Finish,
        ...                # or a final StreamFailed (a failure after the first byte; nothing was stored)
    stream.outcome     # the ChatOutcome once the stream ended successfully (None after a failure)
    stream.close()     # see "client disconnects" below

Opening the stream runs the whole turn up to the model's first event (the same code path as the buffered turn:
limits and quota reservation, the session lease, context planning, the cache lookup, retries and fallbacks), so
everything that can refuse the request raises its :class:`~ctxgate.errors.CtxgateError` there, before any byte
is sent, and the front answers with a normal error response. After the first event nothing is retried: an upstream
failure ends the iteration with one :class:`StreamFailed` event carrying a client-safe message (the details are
logged), the quota reservation is settled to what was delivered, and a stateful turn stores nothing.

A stateful turn is appended (atomically, one conditional write) only after the upstream's last event, and the
session lease is held for the life of the stream.

**Client disconnects.** The caller has paid for the model call once it started, so a turn is stored whenever the
upstream completes: :meth:`ChatStream.close` before the end *drains* the stream (reads the upstream to its end
without delivering the events), then commits the turn, settles the quota and fills the cache as if the client had
read everything. Fronts close the stream when the client goes away (``ctxgate local`` and the streaming function
do); a stream that is garbage-collected unclosed releases its lease and reservation and stores nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal

from ctxgate.cache.service import CacheLookup
from ctxgate.chat.models import ChatOutcome
from ctxgate.context.models import ContextPlan
from ctxgate.errors import CtxgateError
from ctxgate.messages import Completion, Message, Usage
from ctxgate.providers.streaming import CompletionBuilder, StreamEvent, StreamFailed
from ctxgate.quotas.models import RateLimitState
from ctxgate.quotas.service import Hold
from ctxgate.tokens import count_messages, count_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatStreamHead:
    """What is known when the first event is ready (a front sends it as response headers)."""

    served_by: str
    session_id: str | None = None
    turn: int | None = None
    """The sequence number the reply will have once the turn commits (stateful streams)."""
    plan: ContextPlan | None = None
    cache: CacheLookup | None = None
    rate_limits: RateLimitState | None = None


TurnSteps = Generator["ChatStreamHead | StreamEvent", None, ChatOutcome]
"""A turn as a generator: in buffered mode it yields nothing and returns the outcome; streaming, it yields the
head, then the events, and returns the outcome after the commit."""


def finished(steps: TurnSteps) -> ChatOutcome:
    """Run a buffered turn to its outcome."""
    try:
        next(steps)
    except StopIteration as stop:
        return stop.value
    steps.close()
    raise RuntimeError("a buffered turn yielded a stream event")


def relay(
    upstream: Iterator[StreamEvent], hold: Hold, served_by: str, cost: Callable[[Usage], Decimal], prompt: list[Message]
) -> Generator[StreamEvent, None, Completion]:
    """Pass the upstream's events on while folding them into the completion it returns. If the upstream fails
    midway, the reservation is settled to what was delivered (the upstream has billed it), then the error
    propagates."""
    builder = CompletionBuilder()
    try:
        for event in upstream:
            builder.add(event)
            yield event
    except Exception:
        delivered = Usage(prompt_tokens=count_messages(prompt), completion_tokens=count_text(builder.text))
        hold.served(served_by, delivered, cost(delivered))
        raise
    return builder.build()


class ChatStream(Iterator[StreamEvent]):
    """An open streamed turn (see the module docstring). Constructing it runs the turn to its first event and
    raises what the buffered turn would raise."""

    def __init__(self, steps: TurnSteps) -> None:
        self._steps = steps
        head = next(steps)
        if not isinstance(head, ChatStreamHead):
            raise RuntimeError("a streamed turn must announce its head first")
        self.head = head
        self.outcome: ChatOutcome | None = None
        self._done = False

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> StreamEvent:
        if self._done:
            raise StopIteration
        try:
            event = next(self._steps)
        except StopIteration as stop:
            self._done = True
            self.outcome = stop.value
            raise StopIteration from None
        except Exception as error:
            self._done = True
            return failure_event(error)
        assert not isinstance(event, ChatStreamHead)
        return event

    def close(self) -> None:
        """Finish the turn without delivering the rest (the client left): drains the upstream and commits."""
        for _ in self:
            pass

    def closing_after(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """``chunks`` (this stream rendered in a wire format), closing the stream however they end: closed early
        (the client left), the turn still finishes and stores what it has paid for."""
        try:
            yield from chunks
        finally:
            self.close()


def failure_event(error: Exception) -> StreamFailed:
    """A failure after the first byte, as the stream's last event: a ctxgate error keeps its client-facing
    message and code; anything else (a provider error, whose text may name upstream internals) is logged and
    reported generically."""
    if isinstance(error, CtxgateError):
        logger.warning("stream ended by an error", extra={"error": str(error)})
        return StreamFailed(error.message, type=error.type, code=error.code, status=error.status)
    logger.error("upstream stream failed after the first byte", extra={"error": repr(error)})
    return StreamFailed(
        "The model's stream was interrupted; nothing was stored. Retry the request.", code="stream_failed"
    )
