"""Quotas per key through the api handler on moto: exact under concurrency, settled, released, with headers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import respx
from ctxgate.adapters.dynamodb_quotas import DynamoQuotaStore
from ctxgate.auth.models import KeyLimits
from ctxgate.quotas.models import Windows

from tests.functional.quotas.conftest import as_key, call, chat_event

RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
)


def burst(api, context, events: list[dict]) -> list[tuple[int, dict[str, str], dict]]:
    """Send ``events`` at once from as many threads. A Lambda instance serves one request at a time, so threads
    stand in for concurrent instances; the events are identical, so the resolver's process-wide "current event"
    (Powertools keeps it on a class) cannot mix two requests up. A first request builds the route's middleware
    stack, which Powertools does not do thread-safely."""
    call(api, context, as_key(chat_event("warm up"), key_id="warm-up"))
    start = threading.Barrier(len(events))

    def send(event: dict) -> tuple[int, dict[str, str], dict]:
        start.wait()
        return call(api, context, event)

    with ThreadPoolExecutor(max_workers=len(events)) as pool:
        return list(pool.map(send, events))


def test_thirty_concurrent_requests_against_ten_per_minute_serve_exactly_ten(api, lambda_context, aws, quota_store):
    # GIVEN a key allowed 10 requests per minute (and plenty of tokens)
    events = [as_key(chat_event(), rpm=10, tpm=1_000_000) for _ in range(30)]
    # WHEN 30 requests arrive at once
    results = burst(api, lambda_context, events)
    # THEN exactly 10 are served and 20 are refused with OpenAI's 429
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 10 + [429] * 20
    refused = [(headers, body) for status, headers, body in results if status == 429]
    assert {body["error"]["code"] for _, body in refused} == {"rate_limit_exceeded"}
    assert {body["error"]["type"] for _, body in refused} == {"rate_limit_error"}
    assert all(1 <= int(headers["retry-after"]) <= 61 for headers, _ in refused)
    assert {headers["x-ratelimit-remaining-requests"] for headers, _ in refused} == {"0"}
    # AND the ledger shows 10 requests for the key
    rows = [r for r in quota_store.usage("acme", "2000-01-01", "2999-12-31") if r.key_id == "key_a"]
    assert sum(r.requests for r in rows) == 10


def test_a_concurrent_burst_never_pushes_the_token_counter_past_its_limit(api, lambda_context, aws, monkeypatch):
    # GIVEN a key allowed 1000 tokens per minute, and a spy on every reservation's resulting counter
    seen: list[int] = []
    reserve = DynamoQuotaStore.reserve

    def spy(self, *args, **kwargs):
        counters = reserve(self, *args, **kwargs)
        seen.append(counters.minute_tokens)
        return counters

    monkeypatch.setattr(DynamoQuotaStore, "reserve", spy)
    events = [as_key(chat_event(max_tokens=200), tpm=1000) for _ in range(20)]
    # WHEN 20 requests, each reserving its input plus 200 output tokens, arrive at once
    results = burst(api, lambda_context, events)
    # THEN some are refused for tokens, and no reservation ever took the counter past 1000
    served = [body for status, _, body in results if status == 200]
    refused = [body for status, _, body in results if status == 429]
    assert served and refused and len(served) + len(refused) == 20
    assert {b["error"]["code"] for b in refused} == {"rate_limit_exceeded"}
    assert "tokens per minute" in refused[0]["error"]["message"]
    assert len(seen) == len(served)  # every reservation that succeeded was served (the warm-up key has no limits)
    assert max(seen) <= 1000


def test_a_served_request_is_settled_to_its_actual_usage(api, lambda_context, aws, quota_store, now):
    # GIVEN a key with a token quota
    limits = KeyLimits(rpm=5, tpm=10_000)
    # WHEN a request that may produce up to 500 tokens is served
    status, headers, body = call(api, lambda_context, as_key(chat_event(max_tokens=500), rpm=5, tpm=10_000))
    # THEN the minute window keeps the request and exactly the tokens it used, not the worst case
    assert status == 200
    used = body["usage"]["total_tokens"]
    counters = quota_store.current("key_a", Windows.at(now), limits=limits)
    assert (counters.minute_requests, counters.minute_tokens) == (1, used)
    # AND the headers report what remains of the key's limits
    assert headers["x-ratelimit-limit-requests"] == "5" and headers["x-ratelimit-remaining-requests"] == "4"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    assert headers["x-ratelimit-remaining-tokens"] == str(10_000 - used)
    assert headers["x-ratelimit-reset-requests"].endswith("s")


def test_a_failed_provider_call_releases_its_reservation(
    api, lambda_context, aws, quota_store, models_file, monkeypatch, now
):
    # GIVEN a model whose upstream always fails, and a key with quotas
    monkeypatch.setenv("CTXGATE_RETRY_MAX_ATTEMPTS", "1")
    models_file(
        "models:\n"
        "  - {name: echo, provider: echo, upstream_model: echo}\n"
        "  - {name: flaky, provider: openai, upstream_model: m, base_url: 'http://upstream.test/v1'}\n"
    )
    limits = KeyLimits(rpm=5, tpm=10_000, tokens_per_day=50_000)
    event = as_key(chat_event(model="flaky", max_tokens=100), rpm=5, tpm=10_000, tokens_per_day=50_000)
    # WHEN the request fails upstream
    with respx.mock:
        upstream = respx.post("http://upstream.test/v1/chat/completions").mock(return_value=httpx.Response(500))
        status, _, _ = call(api, lambda_context, event)
    # THEN the client gets a 5xx and every window is back where it was
    assert status >= 500 and upstream.called
    counters = quota_store.current("key_a", Windows.at(now), limits=limits)
    assert (counters.minute_requests, counters.minute_tokens, counters.day_tokens) == (0, 0, 0)
    assert quota_store.usage("acme", "2000-01-01", "2999-12-31") == []


def test_the_daily_allowance_is_insufficient_quota_until_midnight(api, lambda_context, aws, quota_store):
    # GIVEN a key allowed 150 tokens a day, and requests that may each use their input plus 100 output tokens
    def send():
        return call(api, lambda_context, as_key(chat_event(max_tokens=100), tokens_per_day=150))

    # WHEN it sends requests until one is refused
    results = [send() for _ in range(5)]
    # THEN the first is served, and once the rest of the day cannot hold a worst case the key gets
    # insufficient_quota, retryable at the next UTC day
    statuses = [status for status, _, _ in results]
    assert statuses[0] == 200 and statuses[-1] == 429 and statuses == sorted(statuses)
    _, headers, body = results[-1]
    assert body["error"]["code"] == "insufficient_quota" and body["error"]["type"] == "rate_limit_error"
    assert 1 <= int(headers["retry-after"]) <= 86_401
    assert headers["x-ratelimit-limit-tokens"] == "150"
    # AND what the served requests used stays within the allowance
    [row] = quota_store.usage("acme", "2000-01-01", "2999-12-31")
    assert row.input_tokens + row.output_tokens <= 150 and row.requests == statuses.count(200)


def test_every_rate_limit_header_is_on_a_success_and_on_a_429(api, lambda_context, aws):
    # GIVEN a key allowed one request per minute
    ok = call(api, lambda_context, as_key(chat_event(), rpm=1, tpm=100_000))
    # WHEN a second request comes within the minute
    refused = call(api, lambda_context, as_key(chat_event(), rpm=1, tpm=100_000))
    # THEN both carry all six headers, in OpenAI's formats
    assert ok[0] == 200 and refused[0] == 429
    for _, headers, _ in (ok, refused):
        assert all(name in headers for name in RATE_LIMIT_HEADERS)
        assert headers["x-ratelimit-reset-requests"][-1] == "s"
    assert ok[1]["x-ratelimit-remaining-requests"] == "0" == refused[1]["x-ratelimit-remaining-requests"]
    assert "retry-after" in refused[1] and "retry-after" not in ok[1]


def test_a_jwt_caller_is_not_limited_per_key_but_is_ledgered(api, lambda_context, aws, quota_store):
    # GIVEN a caller with a JWT (no API key)
    # WHEN it sends three requests
    results = [call(api, lambda_context, as_key(chat_event(), key_id=None)) for _ in range(3)]
    # THEN all are served without rate-limit headers, and the tenant's ledger has them with no key
    assert [status for status, _, _ in results] == [200, 200, 200]
    assert not any(name in results[0][1] for name in RATE_LIMIT_HEADERS)
    [row] = quota_store.usage("acme", "2000-01-01", "2999-12-31")
    assert (row.key_id, row.requests) == (None, 3)
