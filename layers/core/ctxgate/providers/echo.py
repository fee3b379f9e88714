"""The offline, deterministic provider: the gateway runs with no key and no network."""

from __future__ import annotations

import json

from ctxgate.messages import Completion, FunctionCall, Message, ProviderRequest, ToolCall, Usage
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
    """

    def complete(self, request: ProviderRequest) -> Completion:
        messages = request.messages
        last_user = next((m for m in reversed(messages) if m.role == "user"), None)
        text = last_user.text() if last_user else ""
        call = _requested_call(request)
        if call is not None:
            message = Message(role="assistant", tool_calls=[ToolCall(id=f"call_{len(messages)}", function=call)])
            usage = Usage(prompt_tokens=count_messages(messages), completion_tokens=count_text(call.arguments) + 8)
            return Completion(message=message, finish_reason="tool_calls", usage=usage)
        if (request.params.response_format or {}).get("type") in ("json_object", "json_schema"):
            reply = json.dumps({"received": len(messages), "last": text})
        else:
            reply = f"[echo] received {len(messages)} messages; last: {text}"
        usage = Usage(prompt_tokens=count_messages(messages), completion_tokens=count_text(reply))
        return Completion(message=Message(role="assistant", content=reply), finish_reason="stop", usage=usage)


def _requested_call(request: ProviderRequest) -> FunctionCall | None:
    last = request.messages[-1] if request.messages else None
    if not request.params.tools or last is None or last.role != "user" or not last.text().startswith(CALL_COMMAND):
        return None
    name, _, arguments = last.text()[len(CALL_COMMAND) :].strip().partition(" ")
    names = {t.get("function", {}).get("name") for t in request.params.tools}
    if name not in names:
        return None
    return FunctionCall(name=name, arguments=arguments.strip() or "{}")
