"""The usage ledger and its reports: cost from the models file's prices, GET /v1/usage, ``ctxgate usage``."""

from __future__ import annotations

import json

import pytest
from ctxgate.cli import main

from tests.functional.quotas.conftest import as_key, call, chat_event, get_event

PRICED = (
    "models:\n"
    "  - name: echo\n"
    "    provider: echo\n"
    "    upstream_model: echo\n"
    "    price: {input_per_mtok: 3.0, cached_input_per_mtok: 0.3, output_per_mtok: 15.0}\n"
    "  - name: echo-free\n"
    "    provider: echo\n"
    "    upstream_model: echo\n"
)


@pytest.fixture
def traffic(api, lambda_context, aws, models_file) -> list[dict]:
    """Tenant acme: key_a calls the priced echo twice and the free one once, key_b the priced one once; tenant
    other calls once. Returns acme's response bodies."""
    models_file(PRICED)
    sent = [
        ("key_a", "echo", "acme"),
        ("key_a", "echo", "acme"),
        ("key_a", "echo-free", "acme"),
        ("key_b", "echo", "acme"),
        ("key_c", "echo", "other"),
    ]
    bodies = []
    for key_id, model, tenant in sent:
        status, _, body = call(api, lambda_context, as_key(chat_event(model=model), key_id=key_id, tenant=tenant))
        assert status == 200
        if tenant == "acme":
            bodies.append({"key_id": key_id, "model": model, **body["usage"]})
    return bodies


def expected_cost(usages: list[dict]) -> float:
    return sum(u["prompt_tokens"] * 3.0 + u["completion_tokens"] * 15.0 for u in usages if u["model"] == "echo") / 1e6


def test_usage_by_model_sums_tokens_and_prices_them(api, lambda_context, traffic, today):
    # GIVEN acme's traffic on a priced and a free model
    # WHEN acme asks for today's usage by model
    event = as_key(get_event("/v1/usage", {"start": today, "end": today, "group_by": "model"}), key_id="key_a")
    status, _, report = call(api, lambda_context, event)
    # THEN each model's row sums its requests and tokens, and the cost follows the models file's prices
    assert status == 200 and report["object"] == "usage" and report["group_by"] == "model"
    rows = {row["model"]: row for row in report["data"]}
    assert set(rows) == {"echo", "echo-free"}
    priced = [u for u in traffic if u["model"] == "echo"]
    assert rows["echo"]["requests"] == 3
    assert rows["echo"]["input_tokens"] == sum(u["prompt_tokens"] for u in priced)
    assert rows["echo"]["output_tokens"] == sum(u["completion_tokens"] for u in priced)
    assert rows["echo"]["cost_usd"] == pytest.approx(expected_cost(traffic), abs=1e-6)
    assert rows["echo-free"]["cost_usd"] == 0 and rows["echo-free"]["requests"] == 1
    assert report["total"]["requests"] == 4 and report["total"]["cost_usd"] == pytest.approx(expected_cost(traffic))


def test_usage_by_key_covers_the_callers_tenant_only(api, lambda_context, traffic, today):
    # GIVEN traffic of two tenants
    # WHEN acme asks for its usage by key
    status, _, report = call(api, lambda_context, as_key(get_event("/v1/usage", {"group_by": "key"}), key_id="key_b"))
    # THEN it sees its own two keys, and nothing of the other tenant
    assert status == 200 and report["tenant"] == "acme"
    assert {row["key_id"]: row["requests"] for row in report["data"]} == {"key_a": 3, "key_b": 1}
    assert report["start"] <= today == report["end"]


def test_usage_by_day_is_the_default(api, lambda_context, traffic, today):
    status, _, report = call(api, lambda_context, as_key(get_event("/v1/usage", {"start": today})))
    assert status == 200 and report["group_by"] == "day"
    assert [(row["date"], row["requests"]) for row in report["data"]] == [(today, 4)]


@pytest.mark.parametrize(
    "query",
    [{"start": "2026-13-01"}, {"start": "yesterday"}, {"start": "2026-02-02", "end": "2026-02-01"}, {"group_by": "x"}],
)
def test_a_bad_period_or_grouping_is_a_400(api, lambda_context, aws, query):
    status, _, body = call(api, lambda_context, as_key(get_event("/v1/usage", query)))
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] in ("start", "group_by")


def test_a_cache_hit_counts_as_a_request_without_tokens(api, lambda_context, aws, quota_store, today):
    # GIVEN a deterministic request that is cached after it is served once
    event = chat_event("what is 2+2?", temperature=0)
    first = call(api, lambda_context, as_key(event, rpm=10, tpm=100_000))
    # WHEN the same request comes again
    second = call(api, lambda_context, as_key(chat_event("what is 2+2?", temperature=0), rpm=10, tpm=100_000))
    # THEN it is a hit: it counts as a request, but its tokens are given back
    assert first[0] == second[0] == 200 and second[1]["x-ctxgate-cache"] == "hit-exact"
    assert second[1]["x-ratelimit-remaining-requests"] == "8"
    assert int(second[1]["x-ratelimit-remaining-tokens"]) == 100_000 - first[2]["usage"]["total_tokens"]
    [row] = quota_store.usage("acme", today, today)
    assert (row.requests, row.cache_hits) == (2, 1)
    assert row.input_tokens == first[2]["usage"]["prompt_tokens"]


def test_ctxgate_usage_json_prints_the_same_report(api, lambda_context, aws, traffic, capsys, today):
    # GIVEN acme's traffic in the stack's usage table
    # WHEN an operator runs `ctxgate usage --json` against the table
    table = aws.physical["UsageTable"]
    code = main(["usage", "--tenant", "acme", "--start", today, "--group-by", "model", "--table", table, "--json"])
    # THEN it prints one JSON object: the report GET /v1/usage returns
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    event = as_key(get_event("/v1/usage", {"start": today, "end": today, "group_by": "model"}))
    assert printed == call(api, lambda_context, event)[2]


def test_ctxgate_usage_prints_a_table(aws, traffic, capsys):
    code = main(["usage", "--tenant", "acme", "--group-by", "key", "--table", aws.physical["UsageTable"]])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and lines[1].split()[0] == "key_id"
    assert [line.split()[:2] for line in lines[2:]] == [["key_a", "3"], ["key_b", "1"], ["total", "4"]]
