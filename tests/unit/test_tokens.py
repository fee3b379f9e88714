"""The one token counter: OpenAI's cl100k_base encoding and its per-message framing."""

from __future__ import annotations

from ctxgate.messages import Message
from ctxgate.tokens import REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, count_message, count_messages, count_text


def test_counts_with_the_shipped_cl100k_encoding():
    # Reference counts from OpenAI's cl100k_base.
    assert count_text("hello world") == 2
    assert count_text("tiktoken is great!") == 6
    assert count_text("") == 0


def test_message_framing_follows_openai_accounting():
    message = Message(role="user", content="hello world")
    assert count_message(message) == TOKENS_PER_MESSAGE + 2
    assert count_messages([message, message]) == 2 * (TOKENS_PER_MESSAGE + 2) + REPLY_PRIMING_TOKENS


def test_cjk_text_is_counted_not_estimated():
    # chars/4 would say 2 tokens; the real encoding needs far more.
    assert count_text("東京都の天気は晴れです") > 6
