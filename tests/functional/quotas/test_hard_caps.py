"""Hard caps refuse a request before any model call: the key's models, a model's max_output_tokens, the budget."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.conftest import load_event
from tests.functional.quotas.conftest import as_key, call, chat_event

UPSTREAM = "http://upstream.test/v1/chat/completions"
MODELS = (
    "models:\n"
    "  - {name: echo, provider: echo, upstream_model: echo}\n"
    "  - {name: paid, provider: openai, upstream_model: m, base_url: 'http://upstream.test/v1',\n"
    "     max_output_tokens: 256}\n"
)


@pytest.fixture
def upstream(aws, models_file):
    """A paid model behind a mocked upstream; a test asserts whether it was called."""
    models_file(MODELS)
    with respx.mock:
        yield respx.post(UPSTREAM).mock(return_value=httpx.Response(500))


def stateful_event(budget: str, **limits) -> dict:
    body = {"model": "paid", "messages": [{"role": "user", "content": "hi"}]}
    event = load_event("chat_completion_stateful.json", body=body, headers={"X-Ctxgate-Budget": budget})
    return as_key(event, **limits)


def test_max_tokens_above_the_models_cap_is_a_400_and_the_model_is_not_called(api, lambda_context, upstream):
    # GIVEN a model capped at 256 output tokens
    # WHEN a request asks for 1000
    status, _, body = call(api, lambda_context, as_key(chat_event(model="paid", max_tokens=1000)))
    # THEN it is refused before the upstream is called
    assert status == 400 and body["error"]["code"] == "max_tokens_exceeded" and body["error"]["param"] == "max_tokens"
    assert not upstream.called


def test_max_completion_tokens_counts_too(api, lambda_context, upstream):
    status, _, body = call(api, lambda_context, as_key(chat_event(model="paid", max_completion_tokens=257)))
    assert status == 400 and body["error"]["code"] == "max_tokens_exceeded" and not upstream.called


def test_a_budget_above_the_keys_ceiling_is_a_400_and_the_model_is_not_called(api, lambda_context, aws, upstream):
    # GIVEN a key whose sessions may have at most 4096 tokens of budget
    # WHEN a stateful request sets X-Ctxgate-Budget to 8192
    status, _, body = call(api, lambda_context, stateful_event("8192", max_budget_tokens=4096))
    # THEN it is refused, nothing is stored and the upstream is not called
    assert status == 400 and body["error"]["code"] == "budget_exceeds_limit"
    assert body["error"]["param"] == "X-Ctxgate-Budget" and "4096" in body["error"]["message"]
    assert not upstream.called and aws.item_count() == 0


def test_the_gateways_maximum_budget_applies_to_every_key(api, lambda_context, aws, upstream, monkeypatch):
    # GIVEN a gateway whose largest budget is 10000, and a key without a ceiling of its own
    monkeypatch.setenv("CTXGATE_MAX_BUDGET_TOKENS", "10000")
    from ctxgate.bootstrap import reset

    reset()
    # WHEN a request sets a budget of 20000
    status, _, body = call(api, lambda_context, stateful_event("20000"))
    # THEN it is refused before the upstream is called
    assert status == 400 and body["error"]["code"] == "budget_exceeds_limit" and "10000" in body["error"]["message"]
    assert not upstream.called and aws.item_count() == 0


def test_a_model_outside_the_keys_list_is_a_403_before_anything(api, lambda_context, aws, upstream, quota_store):
    # GIVEN a key allowed only the echo model
    # WHEN it asks for the paid model
    status, _, body = call(api, lambda_context, as_key(chat_event(model="paid"), models=("echo",), rpm=10))
    # THEN it is refused as a permission error; nothing is called, counted or stored
    assert status == 403 and body["error"]["type"] == "permission_error"
    assert body["error"]["code"] == "model_not_allowed"
    assert not upstream.called and aws.item_count() == 0
    assert quota_store.usage("acme", "2000-01-01", "2999-12-31") == []


def test_a_request_larger_than_the_keys_tokens_per_minute_is_a_400(api, lambda_context, upstream):
    # GIVEN a key allowed 100 tokens per minute
    # WHEN one request alone may need more (its input plus 200 output tokens)
    status, _, body = call(api, lambda_context, as_key(chat_event(model="paid", max_tokens=200), tpm=100))
    # THEN no retry could help: it is a 400, before the upstream is called
    assert status == 400 and body["error"]["code"] == "tokens_exceed_limit" and not upstream.called
