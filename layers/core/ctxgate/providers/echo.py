"""The offline, deterministic provider: the gateway runs with no key and no network."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

from ctxgate.messages import Completion, FunctionCall, Message, ProviderRequest, ToolCall, Usage
from ctxgate.providers.streaming import Finish, StreamEvent, TextDelta, UsageReport, replay, words
from ctxgate.tokens import count_messages, count_text

CALL_COMMAND = "/call "


class EchoProvider:
    """Replies ``[echo] received {n} messages; last: {text}``.

    ``n`` counts every message the provider received, the system message included; ``text`` is the content
    of the last user message. Usage is counted with the gateway's own token counter.

    So that tool use and structured output can be exercised offline too:

    - with ``tools``, a last message ``/call NAME {json arguments}`` (NAME one of the tools) is answered with that
      tool call (id ``call_{n}``) instead;
    - with a JSON ``response_format``, the reply is the JSON object ``{"received": n, "last": text}``.

    :meth:`stream` yields the same reply word by word, sleeping ``chunk_delay`` seconds before each word
    (``CTXGATE_ECHO_CHUNK_DELAY_MS``: a slow model for tests and benchmarks), then its usage and finish reason.
    """

    def __init__(self, *, chunk_delay: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.chunk_delay = chunk_delay
        self._sleep = sleep

    def complete(self, request: ProviderRequest) -> Completion:
        call = _requested_call(request)
        if call is not None:
            message = Message(
                role="assistant", tool_calls=[ToolCall(id=f"call_{len(request.messages)}", function=call)]
            )
            usage = Usage(
                prompt_tokens=count_messages(request.messages), completion_tokens=count_text(call.arguments) + 8
            )
            return Completion(message=message, finish_reason="tool_calls", usage=usage)
        reply = self._reply(request)
        usage = Usage(prompt_tokens=count_messages(request.messages), completion_tokens=count_text(reply))
        return Completion(message=Message(role="assistant", content=reply), finish_reason="stop", usage=usage)

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        if _requested_call(request) is not None:
            completion = self.complete(request)
            yield from replay(completion, usage=completion.usage)
            return
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
        if (request.params.response_format or {}).get("type") in ("json_object", "json_schema"):
            return json.dumps({"received": len(request.messages), "last": text})
        return f"[echo] received {len(request.messages)} messages; last: {text}"


def _requested_call(request: ProviderRequest) -> FunctionCall | None:
    last = request.messages[-1] if request.messages else None
    if not request.params.tools or last is None or last.role != "user" or not last.text().startswith(CALL_COMMAND):
        return None
    name, _, arguments = last.text()[len(CALL_COMMAND) :].strip().partition(" ")
    names = {t.get("function", {}).get("name") for t in request.params.tools}
    if name not in names:
        return None
    return FunctionCall(name=name, arguments=arguments.strip() or "{}")
