"""Idempotency-Key on the creation routes (chat completions, runs, responses, conversations), with Powertools
Idempotency on moto."""

from __future__ import annotations

import json

import pytest
from aws_lambda_powertools.event_handler import Response

from tests.conftest import FakeContext, load_event, load_function
from tests.functional.api.routes.invocations import call, route_event, stored_turns

TURN = {"model": "echo", "messages": [{"role": "user", "content": "Book Lisbon, window seat."}]}


@pytest.fixture
def api(aws):
    return load_function("api")


def chat(api, body: dict, key: str) -> tuple[int, dict[str, str], str]:
    event = load_event("chat_completion_stateful.json", body=body, headers={"idempotency-key": key})
    return call(api, FakeContext(), event)


def run(api, body: dict, key: str) -> tuple[int, dict[str, str], str]:
    return call(api, FakeContext(), route_event("POST", "/v1/runs", body=body, headers={"idempotency-key": key}))


def test_a_repeated_chat_request_gets_the_first_response_without_a_second_turn(api, aws):
    # GIVEN a stateful chat request sent with an Idempotency-Key
    first = chat(api, TURN, "order-1042-attempt")
    assert first[0] == 200 and stored_turns(aws) == 2
    # WHEN the client times out and sends it again with the same key
    again = chat(api, TURN, "order-1042-attempt")
    # THEN it gets the first response (status, body and headers), marked as a replay, and no second turn is stored
    assert again[0] == 200 and json.loads(again[2]) == json.loads(first[2])
    assert again[1]["x-ctxgate-turn"] == first[1]["x-ctxgate-turn"] == "2"
    assert again[1]["idempotent-replayed"] == "true" and "idempotent-replayed" not in first[1]
    assert stored_turns(aws) == 2


def test_the_same_key_with_a_different_chat_body_is_a_422(api, aws):
    # GIVEN a request made with a key
    assert chat(api, TURN, "reused-key")[0] == 200
    # WHEN the key is reused for a different request
    status, _, body = chat(api, {**TURN, "messages": [{"role": "user", "content": "Aisle, please."}]}, "reused-key")
    # THEN it is refused, and nothing more is stored
    assert status == 422 and json.loads(body)["error"]["code"] == "idempotency_key_reused"
    assert stored_turns(aws) == 2


def test_the_same_key_on_another_session_is_a_422_not_the_first_sessions_answer(api, aws):
    # GIVEN a stateful request made with a key
    assert chat(api, TURN, "session-key")[0] == 200
    # WHEN the same body and key are sent for another session
    event = load_event(
        "chat_completion_stateful.json", body=TURN, headers={"idempotency-key": "session-key", "x-session-id": "other"}
    )
    status, _, body = call(api, FakeContext(), event)
    # THEN it is the key reused for another request: refused, not answered with the first session's reply
    assert status == 422 and json.loads(body)["error"]["code"] == "idempotency_key_reused"
    assert stored_turns(aws) == 2


def test_a_repeated_run_request_returns_the_same_run(api, aws):
    # GIVEN a run created with an Idempotency-Key
    body = {"model": "echo", "input": [{"role": "user", "content": "Plan my week."}]}
    first = run(api, body, "weekly-plan")
    # WHEN the request is repeated with the same key
    again = run(api, body, "weekly-plan")
    # THEN the same run comes back and only one run exists
    assert first[0] == again[0] == 202 and json.loads(again[2])["id"] == json.loads(first[2])["id"]
    runs = aws.session.client("dynamodb").scan(
        TableName=aws.physical["RunsTable"],
        FilterExpression="sk = :run",
        ExpressionAttributeValues={":run": {"S": "RUN"}},
    )
    assert runs["Count"] == 1


def test_the_same_key_with_a_different_run_body_is_a_422(api, aws):
    # GIVEN a run created with a key
    assert run(api, {"model": "echo", "input": [{"role": "user", "content": "a"}]}, "run-key")[0] == 202
    # WHEN the key is reused for another run
    status, _, body = run(api, {"model": "echo", "input": [{"role": "user", "content": "b"}]}, "run-key")
    # THEN it is refused
    assert status == 422 and json.loads(body)["error"]["code"] == "idempotency_key_reused"


def test_a_chat_duplicate_while_the_first_is_in_flight_is_a_409_and_runs_no_model_call(api, aws, monkeypatch):
    import threading

    from ctxgate.providers.echo import EchoProvider

    # GIVEN a stateful chat request with a key whose model call has started but not finished
    assert chat(api, TURN, "warm-up")[0] == 200  # the route's middleware is built before the threads start
    started, release, calls = threading.Event(), threading.Event(), []
    complete = EchoProvider.complete

    def slow_complete(self, request):
        calls.append(request)
        started.set()
        release.wait(30)
        return complete(self, request)

    monkeypatch.setattr(EchoProvider, "complete", slow_complete)
    results: list[tuple[int, dict[str, str], str]] = []
    first = threading.Thread(target=lambda: results.append(chat(api, TURN, "in-flight")))
    first.start()
    assert started.wait(30)
    # WHEN the same request arrives again with the same key
    status, headers, body = chat(api, TURN, "in-flight")
    release.set()
    first.join(30)
    # THEN the duplicate is refused with 409 and Retry-After, without a model call, and the first completes once
    assert status == 409 and int(headers["retry-after"]) >= 1
    assert json.loads(body)["error"]["code"] == "idempotency_request_in_progress"
    assert len(calls) == 1 and results[0][0] == 200
    assert stored_turns(aws) == 4  # the warm-up's two turns and the first request's two


def test_a_duplicate_while_the_first_is_in_flight_is_a_409(aws):
    from ctxgate.api.idempotency import IdempotencyInProgress, idempotent

    # GIVEN a request whose first attempt is still being served
    def first() -> Response:
        # WHEN the duplicate arrives meanwhile
        with pytest.raises(IdempotencyInProgress) as busy:
            idempotent(route="POST /v1/runs", tenant="t", key="k", body="{}", context=FakeContext(), execute=second)
        # THEN it is refused with 409 and a Retry-After, and only the first executes
        assert busy.value.status == 409 and busy.value.retry_after >= 1
        return Response(202, "application/json", "{}")

    def second() -> Response:
        raise AssertionError("a duplicate in flight must not execute")

    response = idempotent(route="POST /v1/runs", tenant="t", key="k", body="{}", context=FakeContext(), execute=first)
    assert response.status_code == 202


def test_keys_are_scoped_by_tenant(api, aws):
    # GIVEN tenant a's request with a key
    event = load_event("chat_completion_stateful.json", body=TURN, headers={"idempotency-key": "shared"}, tenant="a")
    assert call(api, FakeContext(), event)[0] == 200
    # WHEN tenant b uses the same key for another request
    other = {**TURN, "messages": [{"role": "user", "content": "Something else entirely."}]}
    event = load_event("chat_completion_stateful.json", body=other, headers={"idempotency-key": "shared"}, tenant="b")
    status, headers, _ = call(api, FakeContext(), event)
    # THEN b's request is its own: served, not refused and not a replay of a's
    assert status == 200 and "idempotent-replayed" not in headers


def create_response(api, body: dict, key: str) -> tuple[int, dict[str, str], str]:
    return call(api, FakeContext(), route_event("POST", "/v1/responses", body=body, headers={"idempotency-key": key}))


@pytest.mark.parametrize("stream", [False, True])
def test_a_repeated_responses_request_gets_the_first_response_without_a_second_turn(api, aws, stream):
    # GIVEN a response created with an Idempotency-Key (streamed or not)
    body = {"model": "echo", "input": "Book Lisbon.", "stream": stream}
    first = create_response(api, body, f"resp-{stream}")
    assert first[0] == 200 and stored_turns(aws) == 2
    # WHEN the request is sent again with the same key
    again = create_response(api, body, f"resp-{stream}")
    # THEN the first response is replayed whole (the same response id), and no second turn is stored
    assert again[0] == 200 and again[2] == first[2] and again[1]["idempotent-replayed"] == "true"
    assert stored_turns(aws) == 2


def test_a_repeated_conversation_creation_creates_one_conversation(api, aws):
    # GIVEN a conversation created with an Idempotency-Key
    body = {"items": [{"role": "user", "content": "Hello."}]}
    first = call(
        api, FakeContext(), route_event("POST", "/v1/conversations", body=body, headers={"idempotency-key": "c1"})
    )
    # WHEN it is sent again
    again = call(
        api, FakeContext(), route_event("POST", "/v1/conversations", body=body, headers={"idempotency-key": "c1"})
    )
    # THEN the same conversation comes back and only one was made
    assert first[0] == again[0] == 200 and json.loads(again[2])["id"] == json.loads(first[2])["id"]
    assert stored_turns(aws) == 1
