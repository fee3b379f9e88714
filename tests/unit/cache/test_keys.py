"""The exact cache key: what splits it, what must not, and the Cache-Control header it obeys."""

from __future__ import annotations

import json

import pytest
from ctxgate.api.wire.chat_completions import parse_chat_request
from ctxgate.cache.keys import CacheControl, exact_key, is_deterministic, parse_cache_control
from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams

BASE = {"model": "gpt-x", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
VARIANTS = {
    "temperature": 0.5,
    "top_p": 0.9,
    "max_tokens": 50,
    "max_completion_tokens": 60,
    "stop": ["END"],
    "seed": 7,
    "n": 1,
    "tools": [TOOL],
    "tool_choice": "required",
    "response_format": {"type": "json_object"},
    "reasoning_effort": "high",
    "logit_bias": {"50256": -100},
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "top_k": 40,  # a provider-specific extra
}


def key(body: dict, tenant: str = "t") -> str:
    request = parse_chat_request(json.dumps(body))
    return exact_key(tenant, request.model, request.chat_messages(), request.params())


@pytest.mark.parametrize("name", sorted(set(VARIANTS) - {"n"}))
def test_every_output_affecting_parameter_changes_the_key(name):
    assert key({**BASE, name: VARIANTS[name]}) != key(BASE)


def test_n_of_1_shares_the_key_of_an_absent_n():
    # The gateway serves only n=1, which is also what an absent n means: same output, same key.
    assert key({**BASE, "n": 1}) == key(BASE)


def test_n_other_than_1_is_refused_so_it_can_never_share_a_key():
    with pytest.raises(InvalidRequest):
        key({**BASE, "n": 2})


def test_the_tenant_changes_the_key():
    assert key(BASE, tenant="a") != key(BASE, tenant="b")


def test_the_model_changes_the_key():
    assert key({**BASE, "model": "gpt-y"}) != key(BASE)


def test_the_messages_change_the_key():
    assert key({**BASE, "messages": [{"role": "user", "content": "hi"}]}) != key(BASE)


def test_key_order_and_whitespace_do_not_matter():
    body = {**BASE, "temperature": 0, "tools": [TOOL], "response_format": {"type": "json_object", "schema": {"a": 1}}}
    shuffled = json.loads(json.dumps(body))
    reordered = dict(reversed(list(shuffled.items())))
    reordered["response_format"] = {"schema": {"a": 1}, "type": "json_object"}
    spaced = json.dumps(reordered, indent=4)
    assert key(json.loads(spaced)) == key(body)


def test_parameters_that_cannot_change_the_output_do_not_split_the_cache():
    assert key({**BASE, "user": "u-1", "stream": True, "metadata": {"a": "b"}}) == key(BASE)


def params(**fields: object) -> GenerationParams:
    return parse_chat_request(json.dumps({**BASE, **fields})).params()


@pytest.mark.parametrize("fields", [{"temperature": 0}, {"temperature": 0.9, "seed": 3}], ids=["greedy", "seeded"])
def test_greedy_or_seeded_requests_are_deterministic(fields):
    assert is_deterministic(params(**fields))


@pytest.mark.parametrize("fields", [{"temperature": 0.7}, {}], ids=["warm", "default-temperature"])
def test_sampled_requests_are_not_cacheable_by_default(fields):
    assert not is_deterministic(params(**fields))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, CacheControl()),
        ("no-cache", CacheControl(no_cache=True)),
        ("no-store", CacheControl(no_store=True)),
        ("max-age=60", CacheControl(max_age=60)),
        ('No-Cache, max-age="30"', CacheControl(no_cache=True, max_age=30)),
        ("private, no-store", CacheControl(no_store=True)),
    ],
)
def test_cache_control_directives(header, expected):
    assert parse_cache_control(header) == expected


@pytest.mark.parametrize("header", ["max-age=soon", "max-age", "=="])
def test_bad_cache_control_is_a_400(header):
    with pytest.raises(InvalidRequest):
        parse_cache_control(header)
