"""The offline, deterministic provider: the gateway runs with no key and no network."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from ctxgate.messages import Completion, Message, ProviderRequest, Usage
from ctxgate.providers.streaming import Finish, StreamEvent, TextDelta, UsageReport, words
from ctxgate.tokens import count_messages, count_text


class EchoProvider:
    """Replies ``[echo] received {n} messages; last: {text}``.

    ``n`` counts every message the provider received, the system message included; ``text`` is the content
    of the last user message. Usage is counted with the gateway's own token counter.

    :meth:`stream` yields the same reply word by word, sleeping ``chunk_delay`` seconds before each word
    (``CTXGATE_ECHO_CHUNK_DELAY_MS``: a slow model for tests and benchmarks), then its usage and finish reason.
    """

    def __init__(self, *, chunk_delay: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.chunk_delay = chunk_delay
        self._sleep = sleep

    def complete(self, request: ProviderRequest) -> Completion:
        reply = self._reply(request)
        usage = Usage(prompt_tokens=count_messages(request.messages), completion_tokens=count_text(reply))
        return Completion(message=Message(role="assistant", content=reply), finish_reason="stop", usage=usage)

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        reply = self._reply(request)
        for piece in words(reply):
            if self.chunk_delay > 0:
                self._sleep(self.chunk_delay)
            yield TextDelta(piece)
        yield UsageReport(Usage(prompt_tokens=count_messages(request.messages), completion_tokens=count_text(reply)))
        yield Finish("stop")

    @staticmethod
    def _reply(request: ProviderRequest) -> str:
        last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
        text = last_user.text() if last_user else ""
        return f"[echo] received {len(request.messages)} messages; last: {text}"
