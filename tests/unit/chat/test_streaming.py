"""Streamed turns (``ChatService.stateless_stream/stateful_stream``) against an in-memory store: the same turn as
the buffered path, committed only once the upstream completed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from ctxgate.auth.models import Caller, KeyLimits
from ctxgate.chat.lease import SessionBusy
from ctxgate.chat.models import ChatRequest
from ctxgate.chat.service import MIN_TURN_SECONDS, ChatService
from ctxgate.errors import ProviderFailure
from ctxgate.messages import Completion, GenerationParams, Message, ProviderRequest
from ctxgate.providers.base import TransientProviderError
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.providers.streaming import Finish, StreamFailed, TextDelta
from ctxgate.quotas.models import Counters, Windows
from ctxgate.quotas.service import SpendControl
from ctxgate.retry import RetryPolicy
from ctxgate.tokens import count_text

from tests.fakes import MemoryStore, chat_service
from tests.unit.quotas.test_spend_control import NOON, ListLedger, MemoryCounters


class Scripted:
    """A provider whose stream yields ``words`` and then, if ``fail_after`` is set, fails after that many."""

    def __init__(self, words: list[str], fail_after: int | None = None) -> None:
        self.words = words
        self.fail_after = fail_after
        self.calls = 0

    def complete(self, request: ProviderRequest) -> Completion:
        raise AssertionError("a streamed turn must not call complete()")

    def stream(self, request: ProviderRequest) -> Iterator:
        self.calls += 1
        for index, word in enumerate(self.words):
            if index == self.fail_after:
                raise TransientProviderError("upstream reset")
            yield TextDelta(word)
        yield Finish("stop")


def router_of(provider) -> ModelRouter:
    models = ModelsFile(models=[ModelConfig(name="m", provider="openai", upstream_model="m")])
    return ModelRouter(
        models, RetryPolicy(max_attempts=2, base_delay=0), provider_factory=lambda c, t: provider, sleep=lambda s: None
    )


def request(text: str, model: str = "echo") -> ChatRequest:
    return ChatRequest(model, [Message(role="user", content=text)], GenerationParams())


def text_of(events) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def test_a_stateful_stream_commits_the_reply_after_the_last_event():
    # GIVEN a session service with the echo model
    store = MemoryStore()
    svc: ChatService = chat_service(store)
    # WHEN a turn is streamed, and the store is inspected before the stream ended
    stream = svc.stateful_stream(Caller("t"), "s", request("hello there"))
    first = next(stream)
    rows_midway = list(store.rows.get(("t", "s"), []))
    rest = list(stream)
    # THEN nothing was stored midway, and afterwards the turn holds the streamed text at the announced seq
    assert rows_midway == []
    streamed = text_of([first, *rest])
    assert streamed == "[echo] received 1 messages; last: hello there"
    assert [t.message.text() for t in store.rows[("t", "s")]] == ["hello there", streamed]
    assert stream.head.turn == stream.outcome.turn == 2


def test_the_stream_holds_the_session_lease_until_it_ends():
    # GIVEN a streamed turn that has delivered its first event
    store = MemoryStore()
    svc = chat_service(store)
    stream = svc.stateful_stream(Caller("t"), "s", request("one"))
    next(stream)
    # WHEN another turn on the same session is attempted meanwhile (with no time to wait)
    blocked = ChatRequest(
        "echo", [Message(role="user", content="two")], GenerationParams(), deadline=time.time() + MIN_TURN_SECONDS
    )
    # THEN it is refused as busy; once the stream ended, the session takes turns again
    with pytest.raises(SessionBusy):
        svc.stateful(Caller("t"), "s", blocked)
    list(stream)
    assert svc.stateful(Caller("t"), "s", request("two")).turn == 4


def test_a_mid_stream_failure_ends_with_an_error_event_and_stores_nothing():
    # GIVEN an upstream that fails after two words
    store = MemoryStore()
    provider = Scripted(["a ", "b ", "c"], fail_after=2)
    svc = chat_service(store, router_of(provider))
    # WHEN the turn is streamed
    events = list(svc.stateful_stream(Caller("t"), "s", request("hi", model="m")))
    # THEN the client got the two words and a failure event, the upstream was not retried, nothing was stored
    assert text_of(events) == "a b "
    assert isinstance(events[-1], StreamFailed) and "upstream" not in events[-1].message
    assert provider.calls == 1
    assert store.rows.get(("t", "s"), []) == []
    assert store.get("t", "s") is None or store.get("t", "s").last_seq == 0


def test_a_failure_before_the_first_event_raises_before_the_stream_opens():
    # GIVEN an upstream that fails before its first word, every time
    provider = Scripted(["a"], fail_after=0)
    svc = chat_service(MemoryStore(), router_of(provider))
    # WHEN a stream is opened THEN the buffered path's error is raised (the front answers with a JSON error), retried
    with pytest.raises(ProviderFailure):
        svc.stateless_stream(Caller("t"), request("hi", model="m"))
    assert provider.calls == 2


def test_closing_a_stream_early_still_commits_the_paid_turn():
    # GIVEN a streamed turn whose client read one event and left
    store = MemoryStore()
    svc = chat_service(store)
    stream = svc.stateful_stream(Caller("t"), "s", request("hello there"))
    next(stream)
    # WHEN the front closes the stream
    stream.close()
    # THEN the upstream was read to its end and the whole reply is the session's turn
    assert [t.message.text() for t in store.rows[("t", "s")]][-1] == "[echo] received 1 messages; last: hello there"
    assert stream.outcome is not None and stream.outcome.turn == 2


def test_a_stateless_stream_has_the_buffered_outcome():
    svc = chat_service(MemoryStore())
    stream = svc.stateless_stream(Caller("t"), request("same"))
    streamed = text_of(stream)
    buffered = svc.stateless(Caller("t"), request("same"))
    assert streamed == buffered.completion.message.text() == stream.outcome.completion.message.text()
    assert stream.outcome.usage == buffered.usage


def metered(provider) -> tuple[ChatService, MemoryCounters, ListLedger]:
    counters, ledger = MemoryCounters(), ListLedger()
    svc = chat_service(MemoryStore(), router_of(provider))
    svc.spend = SpendControl(counters, ledger, clock=lambda: NOON)
    return svc, counters, ledger


KEY = Caller(tenant="t", key_id="k1", limits=KeyLimits(rpm=10, tpm=100_000))


def test_a_completed_stream_settles_the_reservation_to_its_usage():
    # GIVEN a key with quotas and an upstream that streams three words
    svc, counters, ledger = metered(Scripted(["a ", "b ", "c"]))
    # WHEN the stream is read to its end
    stream = svc.stateless_stream(KEY, request("hi", model="m"))
    list(stream)
    # THEN the key's windows hold the request and exactly the turn's tokens, and the call is ledgered once
    usage = stream.outcome.usage
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(
        1, usage.total_tokens, usage.total_tokens
    )
    assert [row[4].output_tokens for row in ledger.rows] == [usage.completion_tokens]


def test_a_stream_failing_midway_is_charged_what_it_delivered():
    # GIVEN an upstream that fails after two of three words
    svc, counters, ledger = metered(Scripted(["alpha ", "beta ", "gamma"], fail_after=2))
    # WHEN the stream is read
    events = list(svc.stateless_stream(KEY, request("hi", model="m")))
    # THEN the reservation was settled (not left at the worst case) to the prompt plus the delivered words
    assert isinstance(events[-1], StreamFailed)
    (row,) = ledger.rows
    delivered = row[4].input_tokens + row[4].output_tokens
    assert row[4].output_tokens == count_text("alpha beta ")
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(1, delivered, delivered)


def test_a_stream_that_cannot_start_releases_the_whole_reservation():
    svc, counters, ledger = metered(Scripted(["a"], fail_after=0))
    with pytest.raises(ProviderFailure):
        svc.stateless_stream(KEY, request("hi", model="m"))
    assert counters.current("k1", Windows.at(NOON), limits=KeyLimits()) == Counters(0, 0, 0)
    assert ledger.rows == []
