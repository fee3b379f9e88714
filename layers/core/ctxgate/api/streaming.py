"""How a route hands a streamed body to the front that serves it (the seam between buffered and streaming fronts).

API Gateway's HTTP API buffers a Lambda's response, and Lambda's Python runtime cannot stream one: on that path a
route's streamed body is joined and returned whole, as payload format 2.0 requires. A streaming-capable front
(``ctxgate local``'s HTTP server, the streaming function's server behind the Lambda function URL) calls the handler
inside :func:`streaming_front`; a route's streamed body is then handed over in :attr:`StreamSink.body`, the
handler's response carries only the status and headers, and the front writes each chunk as soon as it exists.

The switch is a context variable set by the front in its own process, around its own call of the handler: nothing
in a request (a header, a query parameter, the body) can turn streaming on or off, and a handler invoked any other
way (API Gateway, a test) is always buffered.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from aws_lambda_powertools.event_handler import Response

EVENT_STREAM = "text/event-stream"


@dataclass
class StreamSink:
    """One request's hand-off point. After the handler returned, ``body`` is the streamed body if a route streamed.

    The front must iterate ``body`` to its end or ``close()`` it (a client that went away): closing a chat stream
    early finishes and stores the paid-for turn (:mod:`ctxgate.chat.streaming`)."""

    body: Iterator[bytes] | None = None


_sink: ContextVar[StreamSink | None] = ContextVar("ctxgate_stream_sink", default=None)


@contextmanager
def streaming_front() -> Iterator[StreamSink]:
    """Run the handler call inside this block to receive streamed bodies instead of joined ones."""
    sink = StreamSink()
    token = _sink.set(sink)
    try:
        yield sink
    finally:
        _sink.reset(token)


@contextmanager
def buffered() -> Iterator[None]:
    """Join streamed bodies inside this block even on a streaming front (a response that must be stored whole,
    e.g. under ``Idempotency-Key``, so that its replay is the same bytes)."""
    token = _sink.set(None)
    try:
        yield
    finally:
        _sink.reset(token)


def event_stream_response(chunks: Iterator[bytes], headers: dict[str, str]) -> Response:
    """A 200 ``text/event-stream`` response of ``chunks``: handed to a streaming front, else joined."""
    headers = {**headers, "Cache-Control": "no-cache"}
    sink = _sink.get()
    if sink is None:
        return Response(200, EVENT_STREAM, b"".join(chunks).decode(), headers=headers)
    sink.body = chunks
    return Response(200, EVENT_STREAM, "", headers=headers)
