"""The response cache on moto (tables from template.yaml) with the real local embedding model."""

from __future__ import annotations

import json
import time

import pytest
from ctxgate.bootstrap import build_cache, chat_service, session_service
from ctxgate.cache.keys import CacheControl
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, GenerationParams, Message, Usage
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


def test_a_non_deterministic_request_that_opts_in_is_cached(cache):
    # GIVEN the answer to a sampled request that opted in to caching
    warm = GenerationParams(temperature=0.8)
    messages = [Message(role="user", content="Write a haiku about rain")]
    opted = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True)
    cache.remember("acme", opted, Completion(message=Message(role="assistant", content="drops")), Usage(), "echo")
    # WHEN the same request opts in again
    result = cache.lookup("acme", "echo", messages, warm, control=CacheControl(), opt_in=True)
    # THEN it is an exact hit
    assert result.status == "hit-exact"


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


def chat(api, context, body, headers=None):
    response = api.lambda_handler(
        load_event("chat_completion_stateful.json", body=body, headers=headers or {}), context
    )
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


def test_a_sampled_request_that_opts_in_is_looked_up(aws, lambda_context):
    # GIVEN the api function
    api = load_function("api")
    # WHEN a request with temperature 0.9 opts in with x-ctxgate-cache-opt-in
    headers = chat(api, lambda_context, WARM_HOURS, {"x-ctxgate-cache-opt-in": "true"})[1]
    # THEN it is looked up (and, with nothing stored, misses)
    assert headers["x-ctxgate-cache"] == "miss"


def test_a_bad_cache_control_header_is_a_400(aws, lambda_context):
    # GIVEN the api function
    api = load_function("api")
    # WHEN a request carries Cache-Control: max-age=soon
    status = chat(api, lambda_context, HOURS, {"cache-control": "max-age=soon"})[0]
    # THEN it is refused
    assert status == 400


@pytest.fixture
def cache_lookup_event() -> dict:
    return json.loads(load_event.__globals__["EVENTS"].joinpath("cache_lookup.json").read_text())


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
    # WHEN an event has neither messages nor a session
    # THEN it raises (so Step Functions sees a failure), never a 200
    with pytest.raises(InvalidRequest):
        handler.lambda_handler({"model": "echo"}, lambda_context)  # neither messages nor a session: raise, never 200
