"""The offline, deterministic provider: the gateway runs with no key and no network."""

from __future__ import annotations

from ctxgate.messages import Completion, Message, ProviderRequest, Usage
from ctxgate.tokens import count_messages, count_text


class EchoProvider:
    """Replies ``[echo] received {n} messages; last: {text}``.

    ``n`` counts every message the provider received, the system message included; ``text`` is the content
    of the last user message. Usage is counted with the gateway's own token counter.
    """

    def complete(self, request: ProviderRequest) -> Completion:
        last_user = next((m for m in reversed(request.messages) if m.role == "user"), None)
        text = last_user.text() if last_user else ""
        reply = f"[echo] received {len(request.messages)} messages; last: {text}"
        usage = Usage(prompt_tokens=count_messages(request.messages), completion_tokens=count_text(reply))
        return Completion(message=Message(role="assistant", content=reply), finish_reason="stop", usage=usage)
