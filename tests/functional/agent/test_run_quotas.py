"""Agent runs and spend control: a tenant's cap on concurrent runs, and a run's model calls count against its key."""

from __future__ import annotations

import pytest
from ctxgate.auth.models import KeyLimits
from ctxgate.errors import RateLimited
from ctxgate.quotas.models import Windows

from tests.conftest import load_event
from tests.functional.quotas.conftest import api, as_key, call, now, quota_store  # noqa: F401 (fixtures)

RUN = {"model": "echo", "input": [{"role": "user", "content": "plan my week"}]}


def post(path: str, body: dict | None = None, **caller) -> dict:
    event = load_event("chat_completion_stateless.json", body=body or {}, rawPath=path, routeKey=f"POST {path}")
    event["requestContext"]["http"]["path"] = path
    return as_key(event, **caller)


@pytest.fixture
def two_runs_per_tenant(aws, monkeypatch):
    monkeypatch.setenv("CTXGATE_MAX_CONCURRENT_RUNS", "2")
    from ctxgate.bootstrap import reset

    reset()


def test_a_tenant_may_have_only_its_cap_of_live_runs(api, lambda_context, two_runs_per_tenant):  # noqa: F811
    # GIVEN a tenant with its two allowed runs queued
    first, second = (call(api, lambda_context, post("/v1/runs", RUN)) for _ in range(2))
    assert first[0] == second[0] == 202
    # WHEN it creates a third
    status, headers, body = call(api, lambda_context, post("/v1/runs", RUN))
    # THEN it is refused with a 429 that says when to retry, while another tenant is unaffected
    assert status == 429 and body["error"]["code"] == "concurrent_runs_exceeded" and int(headers["retry-after"]) >= 1
    assert call(api, lambda_context, post("/v1/runs", RUN, tenant="other", key_id="key_o"))[0] == 202
    # AND once one run ends (cancelled), its slot is free again
    cancelled = call(api, lambda_context, post(f"/v1/runs/{first[2]['id']}/cancel"))
    assert cancelled[0] == 200 and cancelled[2]["status"] == "cancelled"
    assert call(api, lambda_context, post("/v1/runs", RUN))[0] == 202


def test_every_model_call_of_a_run_counts_against_the_key_that_created_it(
    api,  # noqa: F811
    lambda_context,
    aws,
    quota_store,  # noqa: F811
    now,  # noqa: F811
):
    # GIVEN a run created with a key that has quotas
    status, _, body = call(api, lambda_context, post("/v1/runs", RUN, key_id="key_r", rpm=5, tpm=50_000))
    assert status == 202
    from ctxgate.bootstrap import agent_service

    run = agent_service().get("acme", body["id"])
    assert run.key_id == "key_r" and run.key_limits.rpm == 5
    # WHEN the state machine's model step runs (in the agent's own function, without the API's request context)
    step = agent_service().model_step("acme", run.id)
    # THEN the call was counted in the key's window and ledgered under the key
    assert step["finished"] is True
    counters = quota_store.current("key_r", Windows.at(now), limits=KeyLimits(rpm=5, tpm=50_000))
    assert counters.minute_requests == 1 and counters.minute_tokens > 0
    [row] = quota_store.usage("acme", "2000-01-01", "2999-12-31")
    assert (row.key_id, row.model, row.requests) == ("key_r", "echo", 1)


def test_a_run_on_a_model_outside_the_keys_list_is_a_403(api, lambda_context, aws):  # noqa: F811
    status, _, body = call(api, lambda_context, post("/v1/runs", RUN, models=("other-model",)))
    assert status == 403 and body["error"]["code"] == "model_not_allowed"


def test_a_run_the_sweeper_fails_gives_back_its_slot(aws, monkeypatch):
    # GIVEN a tenant allowed one live run, holding it with a run whose start never happened
    monkeypatch.setenv("CTXGATE_MAX_CONCURRENT_RUNS", "1")
    from ctxgate.agent.models import RunRequest
    from ctxgate.auth.models import Caller
    from ctxgate.bootstrap import agent_service, reset

    reset()
    request = RunRequest.model_validate({**RUN, "deadline_seconds": 60})
    run = agent_service().create(Caller("acme"), request)
    with pytest.raises(RateLimited):
        agent_service().create(Caller("acme"), request)
    # WHEN the sweeper fails it after its deadline
    assert agent_service().sweep_stuck(run.deadline_at + 1) == 1
    # THEN the tenant may start a run again
    assert agent_service().create(Caller("acme"), request).status == "queued"
