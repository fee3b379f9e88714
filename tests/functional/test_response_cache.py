"""The response cache on moto (tables from template.yaml) with the real local embedding model."""

from __future__ import annotations

import json
import time

import pytest
from ctxgate.api.identity import limits_to_context
from ctxgate.auth.models import KeyLimits
from ctxgate.bootstrap import build_cache, build_chat, chat_service, session_service
from ctxgate.cache.keys import CacheControl
from ctxgate.cache.models import CachedResponse, SemanticEntry
from ctxgate.chat.models import ChatRequest
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, GenerationParams, Message, ProviderRequest, Usage
from ctxgate.providers.base import TransientProviderError
from ctxgate.providers.echo import EchoProvider
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy
from ctxgate.settings import get_settings

from tests.conftest import load_event, load_function

DETERMINISTIC = GenerationParams(temperature=0)


@pytest.fixture
def cache(aws):
    return build_cache(get_settings())


def ask(cache, text: str, *, tenant: str = "acme", system: str | None = None, control=None, params=DETERMINISTIC):
    messages = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=text)]
    return cache.lookup(tenant, "echo", messages, params, control=control or CacheControl())


def store(cache, text: str, answer: str, **kwargs):
    lookup = ask(cache, text, **kwargs)
    cache.remember(
        kwargs.get("tenant", "acme"),
        lookup,
        Completion(message=Message(role="assistant", content=answer)),
        Usage(prompt_tokens=12, completion_tokens=3),
        "echo",
    )
    return lookup


def test_exact_then_semantic_hit_for_a_paraphrase(cache):
    store(cache, "How do I open a savings account?", "Visit a branch with ID.")
    exact = ask(cache, "How do I open a savings account?")
    assert exact.status == "hit-exact" and exact.response.completion.message.content == "Visit a branch with ID."
    paraphrase = ask(cache, "How can I open a savings account?")
    assert paraphrase.status == "hit-semantic" and paraphrase.similarity >= 0.9


@pytest.mark.parametrize(
    ("stored", "query"),
    [
        ("How do I open a savings account?", "How do I close a savings account?"),
        ("How do I enable two-factor authentication?", "How do I disable two-factor authentication?"),
        ("Can I return shoes after 30 days?", "Can I return shoes after 60 days?"),
        ("Convert 100 USD to EUR", "Convert 250 USD to EUR"),
        ("What is the weather in Paris today?", "What is the weather in London today?"),
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("Is it safe to take ibuprofen with alcohol?", "Is it not safe to take ibuprofen with alcohol?"),
    ],
)
def test_near_miss_negatives_never_hit(cache, stored, query):
    store(cache, stored, "an answer to a different question")
    result = ask(cache, query)
    assert result.status == "miss" and result.response is None, result.reason


def test_the_semantic_cache_needs_the_same_context(cache):
    store(cache, "How do I open a savings account?", "answer", system="You are a bank.")
    assert ask(cache, "How can I open a savings account?", system="You are a bank.").status == "hit-semantic"
    assert ask(cache, "How can I open a savings account?", system="You are a pirate.").status == "miss"
    assert ask(cache, "How can I open a savings account?").status == "miss"


def test_tenants_never_see_each_others_entries(cache):
    store(cache, "What is our refund policy for enterprise plans?", "30 days, prorated.", tenant="acme")
    assert ask(cache, "What is our refund policy for enterprise plans?", tenant="acme").status == "hit-exact"
    assert ask(cache, "What is our refund policy for enterprise plans?", tenant="globex").status == "miss"
    assert ask(cache, "What's the refund policy for enterprise plans?", tenant="globex").status == "miss"
    assert ask(cache, "What's the refund policy for enterprise plans?", tenant="acme").status == "hit-semantic"


def test_non_deterministic_requests_bypass_unless_opted_in_by_an_allowed_key(cache):
    warm = GenerationParams(temperature=0.8)
    first = ask(cache, "Write a haiku about rain", params=warm)
    assert first.status == "bypass" and not first.store
    messages = [Message(role="user", content="Write a haiku about rain")]
    opted = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True, allow_extended=True)
    cache.remember("acme", opted, Completion(message=Message(role="assistant", content="drops")), Usage(), "echo")
    again = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True, allow_extended=True)
    assert again.status == "hit-exact"


def test_the_opt_in_is_refused_for_a_key_without_the_flag(cache):
    # GIVEN a non-deterministic request whose answer an allowed key cached
    warm = GenerationParams(temperature=0.8)
    messages = [Message(role="user", content="Write a limerick about fog")]
    opted = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True, allow_extended=True)
    cache.remember("acme", opted, Completion(message=Message(role="assistant", content="mist")), Usage(), "echo")
    # WHEN a key without the flag opts in
    refused = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True)
    # THEN the request bypasses the cache: nothing is served, nothing stored
    assert refused.status == "bypass" and refused.response is None and not refused.store


def test_a_max_age_above_the_default_is_capped_unless_the_key_allows_it(cache):
    default = get_settings().cache_ttl_seconds
    long = CacheControl(max_age=default * 4)
    capped = ask(cache, "How long is the warranty?", control=long)
    allowed = cache.lookup(
        "acme",
        "echo",
        [Message(role="user", content="How long is the warranty?")],
        DETERMINISTIC,
        control=long,
        allow_extended=True,
    )
    assert capped.ttl == default and allowed.ttl == default * 4


def test_cache_control_no_cache_no_store_and_max_age(cache, aws):
    before = time.time()  # before the first store: an entry's expiry counts from its own store
    store(cache, "What time does the branch open?", "9am")
    # no-cache skips the lookup even though an entry exists
    assert ask(cache, "What time does the branch open?", control=CacheControl(no_cache=True)).status == "bypass"
    # no-store: the answer is not kept
    store(cache, "Where is the nearest ATM?", "Main street", control=CacheControl(no_store=True))
    assert ask(cache, "Where is the nearest ATM?").status == "miss"
    # max-age sets the stored entry's TTL
    store(cache, "Is the branch open on Sunday?", "No", control=CacheControl(max_age=120))
    items = aws.session.client("dynamodb").scan(TableName=aws.physical["CacheTable"])["Items"]
    expiry = {
        json.loads(i["response"]["S"])["completion"]["message"]["content"]: int(i["expires_at"]["N"])
        for i in items
        if "response" in i
    }
    assert before + 119 <= expiry["No"] <= time.time() + 121
    assert expiry["9am"] >= before + get_settings().cache_ttl_seconds - 1


def test_a_client_may_raise_the_threshold_but_not_lower_it(cache):
    store(cache, "How do I open a savings account?", "answer")
    messages = [Message(role="user", content="What is the process to open a savings account?")]
    loose = cache.lookup("acme", "echo", messages, DETERMINISTIC, control=CacheControl(), threshold=0.1)
    assert loose.status == "hit-semantic"  # 0.1 is ignored: the deployment's threshold still applies
    strict = cache.lookup("acme", "echo", messages, DETERMINISTIC, control=CacheControl(), threshold=0.99)
    assert strict.status == "miss"


def test_a_large_response_is_offloaded_to_s3(cache, aws):
    store(cache, "Give me the full text.", "x" * 200_000)
    assert any(k.startswith("tenants/acme/cache/") for k in aws.object_keys())
    assert ask(cache, "Give me the full text.").response.completion.message.content == "x" * 200_000


# -- through the api handler --------------------------------------------------------------------------------------


def key_context(*, tenant: str, cache_opt_in: bool) -> dict:
    """The Lambda authorizer's context for an API key (what ``ctxgate.api.identity.caller_of`` reads)."""
    return {"lambda": {"tenant": tenant, "key_id": "key-1", **limits_to_context(KeyLimits(cache_opt_in=cache_opt_in))}}


def chat(api, context, body, headers=None, authorizer=None):
    event = load_event("chat_completion_stateful.json", body=body, headers=headers or {})
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    response = api.lambda_handler(event, context)
    return response["statusCode"], {k.lower(): v for k, v in response["headers"].items()}, json.loads(response["body"])


def test_headers_and_a_stateful_hit_still_appends_the_turn(aws, lambda_context):
    api = load_function("api")
    body = {"model": "echo", "temperature": 0, "messages": [{"role": "user", "content": "What are your hours?"}]}
    first = chat(api, lambda_context, body, {"x-session-id": "cache-a"})
    second = chat(api, lambda_context, body, {"x-session-id": "cache-b"})
    # the assembled requests of two fresh sessions are identical, so the second is an exact hit
    assert first[1]["x-ctxgate-cache"] == "miss" and second[1]["x-ctxgate-cache"] == "hit-exact"
    assert second[2]["choices"][0]["message"]["content"] == first[2]["choices"][0]["message"]["content"]
    turns = session_service().page("default", "cache-b", after=0, limit=10).turns.turns
    assert [t.message.role for t in turns] == ["user", "assistant"]
    # and the session goes on: its next request carries the cached reply as history
    follow = {"model": "echo", "temperature": 0, "messages": [{"role": "user", "content": "And on Sundays?"}]}
    third = chat(api, lambda_context, follow, {"x-session-id": "cache-b"})
    assert third[2]["choices"][0]["message"]["content"] == "[echo] received 3 messages; last: And on Sundays?"
    paraphrase = {
        "model": "echo",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What hours are you open?"}],  # cosine 0.79 to the stored prompt
    }
    semantic = chat(api, lambda_context, paraphrase)
    assert semantic[1]["x-ctxgate-cache"] == "hit-semantic"
    assert float(semantic[1]["x-ctxgate-cache-similarity"]) >= get_settings().semantic_threshold
    warm = {**body, "temperature": 0.9}
    assert chat(api, lambda_context, warm)[1]["x-ctxgate-cache"] == "bypass"
    # the opt-in is honoured only for a key with the cache_opt_in flag (a caller without one: bypass)
    assert chat(api, lambda_context, warm, {"x-ctxgate-cache-opt-in": "true"})[1]["x-ctxgate-cache"] == "bypass"
    allowed = key_context(tenant="default", cache_opt_in=True)
    opted = chat(api, lambda_context, warm, {"x-ctxgate-cache-opt-in": "true"}, authorizer=allowed)
    assert opted[1]["x-ctxgate-cache"] == "miss"
    refused = key_context(tenant="default", cache_opt_in=False)
    assert chat(api, lambda_context, warm, {"x-ctxgate-cache-opt-in": "1"}, authorizer=refused)[1][
        "x-ctxgate-cache"
    ] == ("bypass")
    assert chat(api, lambda_context, body, {"cache-control": "max-age=soon"})[0] == 400


def test_cache_lookup_handler_with_its_sample_event(aws, lambda_context):
    handler = load_function("cache_lookup")
    event = json.loads(load_event.__globals__["EVENTS"].joinpath("cache_lookup.json").read_text())
    assert handler.lambda_handler(event, lambda_context)["status"] == "miss"
    cache = chat_service().cache
    messages = [Message.model_validate(m) for m in event["messages"]]
    lookup = cache.lookup("default", "echo", messages, DETERMINISTIC, control=CacheControl())
    cache.remember(
        "default",
        lookup,
        Completion(message=Message(role="assistant", content="Bring ID.")),
        Usage(prompt_tokens=5, completion_tokens=2),
        "echo",
    )
    result = handler.lambda_handler(event, lambda_context)
    assert result["status"] == "hit-exact" and result["completion"]["message"]["content"] == "Bring ID."
    paraphrased = {
        **event,
        "messages": [event["messages"][0], {"role": "user", "content": "How do I open a savings account?"}],
    }
    result = handler.lambda_handler(paraphrased, lambda_context)
    assert result["status"] == "hit-semantic" and result["similarity"] >= 0.75
    with pytest.raises(InvalidRequest):
        handler.lambda_handler({"model": "echo"}, lambda_context)  # neither messages nor a session: raise, never 200


# -- the model that produced an answer ----------------------------------------------------------------------------


class Unavailable:
    def complete(self, request: ProviderRequest) -> Completion:
        raise TransientProviderError("primary down")


def fallback_chat(aws):
    """A chat service whose model ``main`` always fails over to ``backup`` (an echo)."""
    models = ModelsFile(
        models=[
            ModelConfig(name="main", provider="echo", upstream_model="main", fallbacks=["backup"]),
            ModelConfig(name="backup", provider="echo", upstream_model="backup"),
        ]
    )
    router = ModelRouter(
        models,
        RetryPolicy(max_attempts=1),
        provider_factory=lambda config, timeout: Unavailable() if config.name == "main" else EchoProvider(),
    )
    return build_chat(get_settings(), router)


def test_a_fallback_models_answer_is_not_cached_as_the_primarys(aws):
    # GIVEN a deterministic request for `main` that its fallback `backup` served
    chat_svc = fallback_chat(aws)
    request = ChatRequest("main", [Message(role="user", content="Which plan fits a team of five?")], DETERMINISTIC)
    first = chat_svc.stateless("acme", request)
    assert first.served_by == "backup" and first.cache.status == "miss"
    # WHEN the same request and a paraphrase come again
    again = chat_svc.stateless("acme", request)
    paraphrase = chat_svc.stateless(
        "acme", ChatRequest("main", [Message(role="user", content="Which plan suits a team of five?")], DETERMINISTIC)
    )
    # THEN neither is served the fallback's answer from the cache: nothing was stored under `main`
    assert again.cache.status == "miss" and paraphrase.cache.status == "miss"
    assert aws.session.client("dynamodb").scan(TableName=aws.physical["CacheTable"])["Count"] == 0


def test_an_entry_produced_by_another_model_is_never_served(cache):
    # GIVEN entries under echo's keys that record another model as their producer (as a cache written before
    # fallbacks were kept out would hold)
    lookup = ask(cache, "What is the refund window?")
    answer = Completion(message=Message(role="assistant", content="30 days"))
    stored = CachedResponse(completion=answer, usage=Usage(), served_by="backup", created_at=time.time())
    cache.store.put_exact("acme", lookup.key, stored, expires_at=int(time.time()) + 60)
    entry = SemanticEntry(
        id="other", prompt=lookup.prompt, answer_id="x", served_by="backup", created_at=time.time(), expires_at=2**31
    )
    cache.store.put_semantic("acme", lookup.scope, entry, stored, lookup.vector)
    # WHEN the same question and a paraphrase are looked up for echo
    # THEN both miss
    assert ask(cache, "What is the refund window?").status == "miss"
    assert ask(cache, "What's the refund window?").status == "miss"
