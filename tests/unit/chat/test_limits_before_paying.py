"""Every limit that can reject a chat request is checked before the model is called or anything is stored."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.errors import CtxgateError
from ctxgate.messages import Completion, GenerationParams, Message, ProviderRequest
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

from tests.fakes import MemoryStore, chat_service


class CountingProvider:
    """A provider that records every call (and answers like echo would)."""

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, request: ProviderRequest) -> Completion:
        self.calls += 1
        return Completion(message=Message(role="assistant", content="ok"), finish_reason="stop")


@pytest.fixture
def provider() -> CountingProvider:
    return CountingProvider()


@pytest.fixture
def service(provider: CountingProvider):
    models = ModelsFile(models=[ModelConfig(name="m", provider="openai", upstream_model="m")])
    router = ModelRouter(models, RetryPolicy(), provider_factory=lambda config, timeout: provider)
    return chat_service(MemoryStore(), router, budget=1024)


def user(text: str) -> Message:
    return Message(role="user", content=text)


def refused(service, request: ChatRequest) -> CtxgateError:
    with pytest.raises(CtxgateError) as caught:
        service.stateful(Caller("t"), "s", request)
    return caught.value


def test_more_messages_than_one_transaction_holds_is_refused_before_the_model_call(service, provider):
    error = refused(service, ChatRequest("m", [user(f"m{i}") for i in range(120)], GenerationParams()))
    assert (error.status, error.code) == (400, "too_many_messages")
    assert provider.calls == 0 and service.store.meta == {}


def test_messages_and_pins_together_are_counted_against_the_transaction(service, provider):
    request = ChatRequest(
        "m", [user(f"m{i}") for i in range(60)], GenerationParams(), pins=[f"p{i}" for i in range(60)]
    )
    assert refused(service, request).code == "too_many_messages"
    assert provider.calls == 0


def test_an_out_of_range_budget_is_refused_before_the_model_call(service, provider):
    error = refused(service, ChatRequest("m", [user("hi")], GenerationParams(), budget_tokens=10))
    assert (error.status, error.code) == (400, "invalid_budget")
    assert provider.calls == 0


def test_an_empty_pin_is_refused_before_the_model_call(service, provider):
    error = refused(service, ChatRequest("m", [user("hi")], GenerationParams(), pins=["   "]))
    assert error.status == 400
    assert provider.calls == 0


def test_pins_that_cannot_fit_the_budget_are_refused_before_the_model_call(service, provider):
    pins = ["Never book flights before 9am, and always prefer aisle seats. " * 110]
    error = refused(service, ChatRequest("m", [user("hi")], GenerationParams(), pins=pins))
    assert (error.status, error.code) == (400, "context_budget_exceeded")
    assert provider.calls == 0 and service.store.meta == {}


def test_an_unknown_model_is_refused_before_anything_is_read(service, provider):
    error = refused(service, ChatRequest("nope", [user("hi")], GenerationParams()))
    assert (error.status, error.code) == (404, "model_not_found")
    assert provider.calls == 0
