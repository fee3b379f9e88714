"""The chat-turn domain service against an in-memory store (the port's contract, no AWS)."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.chat.service import ChatService
from ctxgate.errors import InvalidRequest, ProviderFailure, SessionConflict
from ctxgate.messages import Completion, GenerationParams, Message, ProviderRequest
from ctxgate.providers.base import TransientProviderError
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

from tests.fakes import MemoryStore, chat_service


class Failing:
    def complete(self, request: ProviderRequest) -> Completion:
        raise TransientProviderError("down")


def service(store: MemoryStore, router: ModelRouter | None = None) -> ChatService:
    return chat_service(store, router, conflict_retries=3)


def user(text: str) -> Message:
    return Message(role="user", content=text)


def ask(svc: ChatService, *messages: Message, session: str = "s"):
    return svc.stateful(Caller("t"), session, ChatRequest("echo", list(messages), GenerationParams()))


def test_history_is_replayed_to_the_model():
    svc = service(MemoryStore())
    first = ask(svc, Message(role="system", content="sys"), user("one"))
    second = ask(svc, user("two"))
    assert first.completion.message.content == "[echo] received 2 messages; last: one"
    assert second.completion.message.content == "[echo] received 4 messages; last: two"
    assert (first.turn, second.turn) == (2, 4)


def test_each_turn_stores_the_user_message_and_the_reply():
    store = MemoryStore()
    svc = service(store)
    ask(svc, Message(role="system", content="sys"), user("one"))
    ask(svc, user("two"))
    assert [t.message.role for t in store.rows[("t", "s")]] == ["user", "assistant"] * 2


def test_the_system_prompt_is_kept_as_session_metadata():
    store = MemoryStore()
    ask(service(store), Message(role="system", content="sys"), user("one"))
    assert store.meta[("t", "s")].system_prompt == "sys"


def test_repeating_the_same_system_prompt_is_allowed():
    svc = service(MemoryStore())
    ask(svc, Message(role="system", content="sys"), user("one"))
    assert ask(svc, Message(role="system", content="sys"), user("two")).turn == 4


def test_changing_the_system_prompt_is_refused():
    svc = service(MemoryStore())
    ask(svc, Message(role="system", content="sys"), user("one"))
    with pytest.raises(InvalidRequest) as caught:
        ask(svc, Message(role="system", content="other"), user("three"))
    assert caught.value.code == "system_prompt_conflict"


def test_a_lost_race_retries_the_whole_turn():
    store = MemoryStore()
    svc = service(store)
    store.conflicts_to_inject = 2
    assert ask(svc, user("one")).turn == 2


def test_endless_conflicts_become_a_409_and_store_nothing():
    store = MemoryStore()
    store.conflicts_to_inject = 100
    with pytest.raises(SessionConflict) as caught:
        ask(service(store), user("one"))
    assert caught.value.status == 409 and store.rows == {}


def test_a_failed_model_call_stores_nothing():
    store = MemoryStore()
    models = ModelsFile(models=[ModelConfig(name="echo", provider="openai", upstream_model="x")])
    router = ModelRouter(
        models, RetryPolicy(max_attempts=2, base_delay=0), provider_factory=lambda c, t: Failing(), sleep=lambda s: None
    )
    with pytest.raises(ProviderFailure):
        ask(service(store, router), user("one"))
    assert store.rows == {} and store.meta == {}


def test_stateless_requests_store_nothing():
    store = MemoryStore()
    outcome = service(store).stateless(Caller("t"), ChatRequest("echo", [user("x")], GenerationParams()))
    assert outcome.turn is None and store.rows == {}


@pytest.mark.parametrize("session_id", ["", "has space", "x" * 129, "semi;colon", "slash/y"])
def test_bad_session_ids_are_rejected(session_id):
    with pytest.raises(InvalidRequest) as caught:
        ask(service(MemoryStore()), user("x"), session=session_id)
    assert caught.value.code == "invalid_session_id"


def test_a_stateful_request_needs_a_non_system_message():
    with pytest.raises(InvalidRequest):
        ask(service(MemoryStore()), Message(role="system", content="only"))
