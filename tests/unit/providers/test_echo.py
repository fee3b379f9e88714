"""The echo provider: a deterministic stand-in upstream that reports what it was sent."""

from __future__ import annotations

import pytest
from ctxgate.messages import Message, ProviderRequest
from ctxgate.providers.echo import EchoProvider
from ctxgate.providers.streaming import Finish, TextDelta, UsageReport
from ctxgate.tokens import count_messages, count_text


@pytest.fixture
def request_with_history() -> ProviderRequest:
    return ProviderRequest(
        upstream_model="echo",
        messages=[
            Message(role="system", content="be brief"),
            Message(role="user", content="first"),
            Message(role="assistant", content="ok"),
            Message(role="user", content="second"),
        ],
    )


def test_echo_reports_every_message_it_received_and_the_last_user_text(request_with_history):
    completion = EchoProvider().complete(request_with_history)
    assert completion.message.content == "[echo] received 4 messages; last: second"


def test_echo_usage_counts_the_prompt_and_the_reply_with_the_shared_tokenizer(request_with_history):
    completion = EchoProvider().complete(request_with_history)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_messages(request_with_history.messages)
    assert completion.usage.completion_tokens == count_text(completion.message.content)


def test_echo_streams_its_reply_word_by_word_pausing_before_each_word():
    pauses: list[float] = []
    provider = EchoProvider(chunk_delay=0.25, sleep=pauses.append)
    request = ProviderRequest(upstream_model="echo", messages=[Message(role="user", content="hi you")])

    events = list(provider.stream(request))

    words = [e.text for e in events if isinstance(e, TextDelta)]
    assert words == ["[echo] ", "received ", "1 ", "messages; ", "last: ", "hi ", "you"]
    assert "".join(words) == provider.complete(request).message.text()
    assert pauses == [0.25] * len(words)
    assert isinstance(events[-2], UsageReport) and events[-1] == Finish("stop")
