"""Agent runs survive retries and lost starts: a retried model step never appends (or pays) twice, and runs
stuck past their deadline are failed by the sweeper. On moto, through the agent service the tasks use."""

from __future__ import annotations

import pytest
from ctxgate.agent.models import RunRequest
from ctxgate.auth.models import Caller

from tests.conftest import _reset_caches


@pytest.fixture
def agent(aws):
    from ctxgate.bootstrap import agent_service

    _reset_caches()
    return agent_service()


def run_request(**changes) -> RunRequest:
    return RunRequest.model_validate(
        {"model": "echo", "input": [{"role": "user", "content": "Plan my week."}], "session_id": "planner", **changes}
    )


def test_a_model_step_retried_after_its_turn_was_stored_does_not_append_or_call_again(agent, monkeypatch):
    # GIVEN a run whose first model step stores its turn and then dies before recording its progress
    run = agent.create(Caller("default"), run_request())
    save = agent.runs.save
    calls = {"save": 0}

    def crash_once(record, *, expected_status):
        calls["save"] += 1
        if calls["save"] == 1 and record.steps_used == 1:
            raise TimeoutError("the Lambda timed out here")
        return save(record, expected_status=expected_status)

    monkeypatch.setattr(agent.runs, "save", crash_once)
    with pytest.raises(TimeoutError):
        agent.model_step("default", run.id)
    session = agent.chat.store.get("default", "planner")
    assert session is not None and session.last_seq == 2  # the input and the reply were stored
    # WHEN Step Functions retries the step
    result = agent.model_step("default", run.id)
    # THEN it finishes from the stored reply: no second append, and the step says so
    assert result["finished"] is True
    assert agent.chat.store.get("default", "planner").last_seq == 2
    report = agent.report("default", run.id)
    assert report.run.status == "succeeded" and report.run.output.startswith("[echo] received 1 messages")
    (step,) = report.steps
    assert step.kind == "model" and step.cache == "recovered" and not step.in_progress


def test_a_model_step_retried_before_anything_was_stored_calls_the_model(agent, monkeypatch):
    # GIVEN a run whose first model step dies before the model call returned (its record says it began)
    run = agent.create(Caller("default"), run_request(session_id="fresh"))
    real = agent.chat.stateful
    monkeypatch.setattr(agent.chat, "stateful", lambda *a, **k: (_ for _ in ()).throw(TimeoutError("upstream")))
    with pytest.raises(TimeoutError):
        agent.model_step("default", run.id)
    # WHEN the step is retried
    monkeypatch.setattr(agent.chat, "stateful", real)
    agent.model_step("default", run.id)
    # THEN the turn is stored once
    assert agent.chat.store.get("default", "fresh").last_seq == 2
    assert agent.report("default", run.id).run.status == "succeeded"


def test_a_run_stuck_past_its_deadline_is_failed_by_the_sweeper(agent):
    # GIVEN a run whose start message never reached the starter (it stays queued)
    run = agent.create(Caller("default"), run_request(session_id="stuck", deadline_seconds=60))
    # WHEN the sweeper runs after the run's deadline
    failed = agent.sweep_stuck(run.deadline_at + 1)
    # THEN the run is failed, with a cause that says why
    assert failed == 1
    stuck = agent.report("default", run.id).run
    assert stuck.status == "failed" and stuck.error == "DeadlineExceeded"
    assert agent.sweep_stuck(run.deadline_at + 1) == 0  # terminal runs leave the index


def test_the_sweeper_leaves_runs_within_their_deadline(agent):
    # GIVEN a queued run with time left
    run = agent.create(Caller("default"), run_request(session_id="patient", deadline_seconds=600))
    # WHEN the sweeper runs before its deadline
    # THEN nothing happens to it
    assert agent.sweep_stuck(run.deadline_at - 1) == 0
    assert agent.report("default", run.id).run.status == "queued"
