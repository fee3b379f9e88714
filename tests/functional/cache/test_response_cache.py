"""The response cache on moto (tables from template.yaml) with the real local embedding model."""

from __future__ import annotations

import json
import time

import pytest
from ctxgate.api.identity import limits_to_context
from ctxgate.auth.models import Caller, KeyLimits
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

from tests.conftest import load_event, load_function, sample_run

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


def test_an_identical_request_is_an_exact_hit(cache):
    # GIVEN a stored answer
    store(cache, "How do I open a savings account?", "Visit a branch with ID.")
    # WHEN the same question is asked again
    exact = ask(cache, "How do I open a savings account?")
    # THEN the stored answer is served as an exact hit
    assert exact.status == "hit-exact" and exact.response.completion.message.content == "Visit a branch with ID."


def test_a_paraphrase_is_a_semantic_hit(cache):
    # GIVEN a stored answer
    store(cache, "How do I open a savings account?", "Visit a branch with ID.")
    # WHEN the question is asked in other words
    paraphrase = ask(cache, "How can I open a savings account?")
    # THEN it is a semantic hit with a high similarity
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
    # GIVEN a stored answer
    store(cache, stored, "an answer to a different question")
    # WHEN a question that reads alike but asks something else comes in
    result = ask(cache, query)
    # THEN it is a miss
    assert result.status == "miss" and result.response is None, result.reason


def test_a_paraphrase_in_the_same_context_is_a_semantic_hit(cache):
    # GIVEN an answer stored under a system prompt
    store(cache, "How do I open a savings account?", "answer", system="You are a bank.")
    # WHEN a paraphrase comes in under the same system prompt
    result = ask(cache, "How can I open a savings account?", system="You are a bank.")
    # THEN it is a semantic hit
    assert result.status == "hit-semantic"


@pytest.mark.parametrize("system", ["You are a pirate.", None], ids=["other-system-prompt", "no-system-prompt"])
def test_a_paraphrase_in_another_context_is_a_miss(cache, system):
    # GIVEN an answer stored under a system prompt
    store(cache, "How do I open a savings account?", "answer", system="You are a bank.")
    # WHEN a paraphrase comes in under another system prompt, or none
    result = ask(cache, "How can I open a savings account?", system=system)
    # THEN it is a miss: the semantic cache needs the same context
    assert result.status == "miss"


REFUND = "What is our refund policy for enterprise plans?"
REFUND_PARAPHRASE = "What's the refund policy for enterprise plans?"


def test_a_tenant_hits_its_own_entries(cache):
    # GIVEN an answer stored by tenant acme
    store(cache, REFUND, "30 days, prorated.", tenant="acme")
    # WHEN acme asks the same question, and a paraphrase of it
    exact, paraphrase = ask(cache, REFUND, tenant="acme"), ask(cache, REFUND_PARAPHRASE, tenant="acme")
    # THEN both are hits
    assert exact.status == "hit-exact"
    assert paraphrase.status == "hit-semantic"


@pytest.mark.parametrize("question", [REFUND, REFUND_PARAPHRASE], ids=["same-question", "paraphrase"])
def test_tenants_never_see_each_others_entries(cache, question):
    # GIVEN an answer stored by tenant acme
    store(cache, REFUND, "30 days, prorated.", tenant="acme")
    # WHEN tenant globex asks the same question, or a paraphrase
    result = ask(cache, question, tenant="globex")
    # THEN it is a miss
    assert result.status == "miss"


def test_non_deterministic_requests_bypass_the_cache(cache):
    # GIVEN a sampled (temperature 0.8) request that does not opt in
    warm = GenerationParams(temperature=0.8)
    # WHEN it is looked up
    first = ask(cache, "Write a haiku about rain", params=warm)
    # THEN the cache is bypassed and its answer will not be stored
    assert first.status == "bypass" and not first.store


def test_a_non_deterministic_request_that_opts_in_with_an_allowed_key_is_cached(cache):
    # GIVEN the answer to a sampled request that opted in to caching, from a key allowed to
    warm = GenerationParams(temperature=0.8)
    messages = [Message(role="user", content="Write a haiku about rain")]
    opted = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True, allow_extended=True)
    cache.remember("acme", opted, Completion(message=Message(role="assistant", content="drops")), Usage(), "echo")
    # WHEN the same request opts in again
    result = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True, allow_extended=True)
    # THEN it is an exact hit
    assert result.status == "hit-exact"


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
    # GIVEN a max-age four times the deployment's default
    default = get_settings().cache_ttl_seconds
    long = CacheControl(max_age=default * 4)
    # WHEN it comes from a caller without the flag, and from one with it
    capped = ask(cache, "How long is the warranty?", control=long)
    allowed = cache.lookup(
        "acme",
        "echo",
        [Message(role="user", content="How long is the warranty?")],
        DETERMINISTIC,
        control=long,
        allow_extended=True,
    )
    # THEN only the allowed caller's entry may live longer than the default
    assert capped.ttl == default and allowed.ttl == default * 4


def test_no_cache_skips_the_lookup(cache):
    # GIVEN a stored answer
    store(cache, "What time does the branch open?", "9am")
    # WHEN the same question comes with Cache-Control: no-cache
    result = ask(cache, "What time does the branch open?", control=CacheControl(no_cache=True))
    # THEN the lookup is skipped even though an entry exists
    assert result.status == "bypass"


def test_no_store_keeps_no_answer(cache):
    # GIVEN an answer produced under Cache-Control: no-store
    store(cache, "Where is the nearest ATM?", "Main street", control=CacheControl(no_store=True))
    # WHEN the same question comes again
    result = ask(cache, "Where is the nearest ATM?")
    # THEN the answer was not kept
    assert result.status == "miss"


def expiry_by_answer(aws) -> dict[str, int]:
    items = aws.session.client("dynamodb").scan(TableName=aws.physical["CacheTable"])["Items"]
    return {
        json.loads(i["response"]["S"])["completion"]["message"]["content"]: int(i["expires_at"]["N"])
        for i in items
        if "response" in i
    }


def test_max_age_sets_the_stored_entrys_ttl(cache, aws):
    # GIVEN a clock reading before the answer is stored
    before = time.time()
    # WHEN an answer is stored under Cache-Control: max-age=120
    store(cache, "Is the branch open on Sunday?", "No", control=CacheControl(max_age=120))
    # THEN its entry expires 120 seconds after it was stored
    assert before + 119 <= expiry_by_answer(aws)["No"] <= time.time() + 121


def test_without_max_age_the_deployments_ttl_applies(cache, aws):
    # GIVEN the deployment's cache TTL
    ttl = get_settings().cache_ttl_seconds
    # WHEN an answer is stored without max-age
    store(cache, "What time does the branch open?", "9am")
    after = time.time()
    # THEN its entry lives for that TTL, counted from when it was stored
    assert after + ttl - 1 <= expiry_by_answer(aws)["9am"] <= after + ttl


PROCESS_QUESTION = [Message(role="user", content="What is the process to open a savings account?")]


def test_a_client_may_not_lower_the_threshold(cache):
    # GIVEN a stored answer
    store(cache, "How do I open a savings account?", "answer")
    # WHEN a related question asks for a similarity threshold of 0.1
    loose = cache.lookup("acme", "echo", PROCESS_QUESTION, DETERMINISTIC, control=CacheControl(), threshold=0.1)
    # THEN 0.1 is ignored: the deployment's threshold still applies, and this question passes it
    assert loose.status == "hit-semantic"


def test_a_client_may_raise_the_threshold(cache):
    # GIVEN a stored answer
    store(cache, "How do I open a savings account?", "answer")
    # WHEN a related question asks for a similarity threshold of 0.99
    strict = cache.lookup("acme", "echo", PROCESS_QUESTION, DETERMINISTIC, control=CacheControl(), threshold=0.99)
    # THEN the stricter threshold applies and it is a miss
    assert strict.status == "miss"


def test_a_large_response_is_offloaded_to_s3(cache, aws):
    # GIVEN a tenant's cache
    # WHEN a 200 KB answer is stored
    store(cache, "Give me the full text.", "x" * 200_000)
    # THEN its body is in S3 under the tenant's cache prefix
    assert any(k.startswith("tenants/acme/cache/") for k in aws.object_keys())


def test_an_offloaded_response_is_served_whole(cache, aws):
    # GIVEN a 200 KB answer offloaded to S3
    store(cache, "Give me the full text.", "x" * 200_000)
    # WHEN the same question comes again
    result = ask(cache, "Give me the full text.")
    # THEN the whole answer is served
    assert result.response.completion.message.content == "x" * 200_000


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


HOURS = {"model": "echo", "temperature": 0, "messages": [{"role": "user", "content": "What are your hours?"}]}
WARM_HOURS = {**HOURS, "temperature": 0.9}


def test_an_identical_first_turn_in_another_session_is_an_exact_hit(aws, lambda_context):
    # GIVEN the api function, and a first turn of session cache-a that missed and was stored
    api = load_function("api")
    first = chat(api, lambda_context, HOURS, {"x-session-id": "cache-a"})
    # WHEN session cache-b opens with the same message
    second = chat(api, lambda_context, HOURS, {"x-session-id": "cache-b"})
    # THEN the assembled requests of the two fresh sessions are identical, so the second is an exact hit
    assert first[1]["x-ctxgate-cache"] == "miss" and second[1]["x-ctxgate-cache"] == "hit-exact"
    assert second[2]["choices"][0]["message"]["content"] == first[2]["choices"][0]["message"]["content"]


def test_a_stateful_hit_still_appends_the_turn(aws, lambda_context):
    # GIVEN a cached answer to the opening message
    api = load_function("api")
    chat(api, lambda_context, HOURS, {"x-session-id": "cache-a"})
    # WHEN another session opens with the same message and is served from the cache
    chat(api, lambda_context, HOURS, {"x-session-id": "cache-b"})
    # THEN that session stored the user message and the cached reply
    turns = session_service().page("default", "cache-b", after=0, limit=10).turns.turns
    assert [t.message.role for t in turns] == ["user", "assistant"]


def test_a_session_goes_on_after_a_cached_reply(aws, lambda_context):
    # GIVEN a session whose first reply came from the cache
    api = load_function("api")
    chat(api, lambda_context, HOURS, {"x-session-id": "cache-a"})
    chat(api, lambda_context, HOURS, {"x-session-id": "cache-b"})
    # WHEN it sends its next message
    follow = {"model": "echo", "temperature": 0, "messages": [{"role": "user", "content": "And on Sundays?"}]}
    third = chat(api, lambda_context, follow, {"x-session-id": "cache-b"})
    # THEN the request carried the cached reply as history
    assert third[2]["choices"][0]["message"]["content"] == "[echo] received 3 messages; last: And on Sundays?"


def test_a_paraphrase_is_a_semantic_hit_with_its_similarity_in_a_header(aws, lambda_context):
    # GIVEN a cached answer to "What are your hours?"
    api = load_function("api")
    chat(api, lambda_context, HOURS, {"x-session-id": "cache-a"})
    # WHEN another session opens with a paraphrase
    paraphrase = {
        "model": "echo",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What hours are you open?"}],  # cosine 0.79 to the stored prompt
    }
    semantic = chat(api, lambda_context, paraphrase)
    # THEN it is a semantic hit, and the similarity header clears the deployment's threshold
    assert semantic[1]["x-ctxgate-cache"] == "hit-semantic"
    assert float(semantic[1]["x-ctxgate-cache-similarity"]) >= get_settings().semantic_threshold


def test_a_sampled_request_bypasses_the_cache(aws, lambda_context):
    # GIVEN the api function
    api = load_function("api")
    # WHEN a request with temperature 0.9 comes in without opting in
    headers = chat(api, lambda_context, WARM_HOURS)[1]
    # THEN the cache is bypassed
    assert headers["x-ctxgate-cache"] == "bypass"


def test_a_sampled_request_that_opts_in_with_an_allowed_key_is_looked_up(aws, lambda_context):
    # GIVEN the api function and a key with the cache_opt_in flag
    api = load_function("api")
    allowed = key_context(tenant="default", cache_opt_in=True)
    # WHEN a request with temperature 0.9 opts in with x-ctxgate-cache-opt-in
    headers = chat(api, lambda_context, WARM_HOURS, {"x-ctxgate-cache-opt-in": "true"}, authorizer=allowed)[1]
    # THEN it is looked up (and, with nothing stored, misses)
    assert headers["x-ctxgate-cache"] == "miss"


def test_a_key_without_the_flag_cannot_opt_in(aws, lambda_context):
    # GIVEN the api function and a key without the cache_opt_in flag
    api = load_function("api")
    refused = key_context(tenant="default", cache_opt_in=False)
    # WHEN a sampled request opts in
    headers = chat(api, lambda_context, WARM_HOURS, {"x-ctxgate-cache-opt-in": "1"}, authorizer=refused)[1]
    # THEN the cache is bypassed
    assert headers["x-ctxgate-cache"] == "bypass"


def test_a_bad_cache_control_header_is_a_400(aws, lambda_context):
    # GIVEN the api function
    api = load_function("api")
    # WHEN a request carries Cache-Control: max-age=soon
    status = chat(api, lambda_context, HOURS, {"cache-control": "max-age=soon"})[0]
    # THEN it is refused
    assert status == 400


@pytest.fixture
def cache_lookup_event(aws) -> dict:
    """The sample event, and the run it names (the task reads the tenant's session and model from the run)."""
    event = json.loads(load_event.__globals__["EVENTS"].joinpath("cache_lookup.json").read_text())
    sample_run(event["tenant"], event["run_id"])
    return event


def remember_answer(event: dict) -> None:
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


def test_cache_lookup_handler_misses_on_an_empty_cache(aws, lambda_context, cache_lookup_event):
    # GIVEN the cache_lookup function and an empty cache
    handler = load_function("cache_lookup")
    # WHEN it handles its sample event
    result = handler.lambda_handler(cache_lookup_event, lambda_context)
    # THEN it reports a miss
    assert result["status"] == "miss"


def test_cache_lookup_handler_serves_an_exact_hit(aws, lambda_context, cache_lookup_event):
    # GIVEN the cache_lookup function and an answer stored for its sample event
    handler = load_function("cache_lookup")
    remember_answer(cache_lookup_event)
    # WHEN it handles the sample event
    result = handler.lambda_handler(cache_lookup_event, lambda_context)
    # THEN it serves the stored answer as an exact hit
    assert result["status"] == "hit-exact" and result["completion"]["message"]["content"] == "Bring ID."


def test_cache_lookup_handler_serves_a_semantic_hit(aws, lambda_context, cache_lookup_event):
    # GIVEN the cache_lookup function and an answer stored for its sample event
    handler = load_function("cache_lookup")
    remember_answer(cache_lookup_event)
    # WHEN it handles the event with the question paraphrased
    question = {"role": "user", "content": "How do I open a savings account?"}
    paraphrased = {**cache_lookup_event, "messages": [cache_lookup_event["messages"][0], question]}
    result = handler.lambda_handler(paraphrased, lambda_context)
    # THEN it is a semantic hit
    assert result["status"] == "hit-semantic" and result["similarity"] >= 0.75


def test_cache_lookup_handler_raises_on_an_invalid_event(aws, lambda_context):
    # GIVEN the cache_lookup function
    handler = load_function("cache_lookup")
    # WHEN an event names no tenant and no run
    # THEN it raises (so Step Functions sees a failure), never a 200
    with pytest.raises(InvalidRequest):
        handler.lambda_handler({"model": "echo"}, lambda_context)


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
    first = chat_svc.stateless(Caller(tenant="acme"), request)
    assert first.served_by == "backup" and first.cache.status == "miss"
    # WHEN the same request and a paraphrase come again
    again = chat_svc.stateless(Caller(tenant="acme"), request)
    paraphrase = chat_svc.stateless(
        Caller(tenant="acme"),
        ChatRequest("main", [Message(role="user", content="Which plan suits a team of five?")], DETERMINISTIC),
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
