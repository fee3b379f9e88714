"""``/v1/sessions/...`` (api/routes/sessions.py): read, delete, pins and context inspection, through
functions/api/app.py with events from events/, on moto."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import load_event
from tests.functional.api.routes.invocations import call, route_event


def send(api: ModuleType, context: Any, text: str) -> None:
    """One more user turn on the sample stateful session."""
    body = {"model": "echo", "messages": [{"role": "user", "content": text}]}
    call(api, context, load_event("chat_completion_stateful.json", body=body))


def test_get_session_returns_the_system_prompt_and_the_turns(api, lambda_context, aws):
    # GIVEN a session holding the sample stateful exchange
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    # WHEN the client reads it
    status, _, body = call(api, lambda_context, load_event("get_session.json"))
    # THEN it gets the system prompt and both turns on a single page
    page = json.loads(body)
    assert status == 200 and page["system_prompt"] == "You are a terse support agent."
    assert [t["role"] for t in page["turns"]] == ["user", "assistant"] and page["turn_count"] == 2
    assert page["has_more"] is False


def test_get_session_is_paginated(api, lambda_context, aws):
    # GIVEN a session with four turns
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    send(api, lambda_context, "more")
    # WHEN the client reads it with the sample event's page size (2), then asks for the page after turn 2
    _, _, body = call(api, lambda_context, load_event("get_session.json"))
    event = load_event("get_session.json", queryStringParameters={"limit": "2", "after": "2"}, rawQueryString="")
    second = json.loads(call(api, lambda_context, event)[2])
    # THEN the first page holds turns 1-2 and points past them, and the second page holds turns 3-4
    page = json.loads(body)
    assert [t["turn"] for t in page["turns"]] == [1, 2] and page["has_more"] and page["next_after"] == 2
    assert [t["turn"] for t in second["turns"]] == [3, 4]


def test_delete_removes_the_session(api, lambda_context, aws):
    # GIVEN a session with four turns
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    send(api, lambda_context, "more")
    # WHEN the client deletes it
    status, _, body = call(api, lambda_context, load_event("delete_session.json"))
    # THEN every item is gone and reading it is a 404
    assert status == 200 and json.loads(body)["deleted"] is True
    assert aws.item_count() == 0
    assert call(api, lambda_context, load_event("get_session.json"))[0] == 404


def test_deleting_a_deleted_session_is_a_404(api, lambda_context, aws):
    # GIVEN a session that was created and then deleted
    call(api, lambda_context, load_event("chat_completion_stateful.json"))
    call(api, lambda_context, load_event("delete_session.json"))
    # WHEN the client deletes it again
    status = call(api, lambda_context, load_event("delete_session.json"))[0]
    # THEN it is told the session does not exist
    assert status == 404


PIN = "Budget is 2000 EUR, never more."


def add_pin(api: ModuleType, context: Any) -> tuple[int, dict]:
    status, _, body = call(api, context, route_event("POST", "/v1/sessions/p1/pins", body={"content": PIN}))
    return status, json.loads(body)


def chat_with_a_pinned_message(api: ModuleType, context: Any) -> str:
    """A turn on session p1 whose second message is pinned; returns the echoed reply."""
    chat = {
        "model": "echo",
        "messages": [
            {"role": "user", "content": "Plan a trip", "pin": False},
            {"role": "user", "content": "Vegetarian food only.", "pin": True},
        ],
    }
    _, _, body = call(
        api, context, load_event("chat_completion_stateful.json", body=chat, headers={"x-session-id": "p1"})
    )
    return json.loads(body)["choices"][0]["message"]["content"]


def listed_pins(api: ModuleType, context: Any) -> list[str]:
    listed = json.loads(call(api, context, route_event("GET", "/v1/sessions/p1/pins"))[2])["data"]
    return [p["content"] for p in listed]


def test_a_pin_can_be_added(api, lambda_context, aws):
    # GIVEN no session p1 yet
    # WHEN the client pins a constraint to it
    status, pin = add_pin(api, lambda_context)
    # THEN the pin is created with a pin id
    assert status == 201
    assert pin["object"] == "session.pin" and pin["id"].startswith("pin_")


def test_a_pinned_message_is_both_a_turn_and_a_pin(api, lambda_context, aws):
    # GIVEN a session with one pin added through the pins route
    add_pin(api, lambda_context)
    # WHEN a chat turn marks one of its two messages as a pin
    reply = chat_with_a_pinned_message(api, lambda_context)
    # THEN the model saw the system pins message and the two new user messages, and both pins are listed in order
    assert reply.startswith("[echo] received 3 messages")
    assert listed_pins(api, lambda_context) == [PIN, "Vegetarian food only."]


def test_pins_reach_the_context(api, lambda_context, aws):
    # GIVEN a session with a pin from the pins route and one from a pinned chat message
    add_pin(api, lambda_context)
    chat_with_a_pinned_message(api, lambda_context)
    # WHEN the client inspects the context the next message would get
    status, _, body = call(
        api, lambda_context, route_event("GET", "/v1/sessions/p1/context", query={"message": "What is my budget?"})
    )
    # THEN the pins section holds one message carrying the pins
    context = json.loads(body)
    pins_section = next(s for s in context["sections"] if s["name"] == "pins")
    assert status == 200 and pins_section["messages"] == 1 and pins_section["tokens"] > 10


def test_a_pin_can_be_deleted_once(api, lambda_context, aws):
    # GIVEN a session with two pins
    _, pin = add_pin(api, lambda_context)
    chat_with_a_pinned_message(api, lambda_context)
    # WHEN the client deletes the first pin, twice
    first = call(api, lambda_context, route_event("DELETE", f"/v1/sessions/p1/pins/{pin['id']}"))[0]
    second = call(api, lambda_context, route_event("DELETE", f"/v1/sessions/p1/pins/{pin['id']}"))[0]
    # THEN the first delete succeeds, the second is a 404, and only the other pin is left
    assert first == 200
    assert second == 404
    assert listed_pins(api, lambda_context) == ["Vegetarian food only."]


@pytest.mark.parametrize("body", [{"content": ""}, {"content": 5}, {}, "not json"])
def test_bad_pins_are_4xx(api, lambda_context, aws, body):
    # GIVEN a pin request with empty, mistyped, missing or unparseable content
    event = route_event("POST", "/v1/sessions/p2/pins")
    event["body"] = body if isinstance(body, str) else json.dumps(body)
    # WHEN it is sent to the api function
    status, _, text = call(api, lambda_context, event)
    # THEN the client gets an OpenAI-style 400 and nothing was stored
    assert status == 400 and json.loads(text)["error"]["type"] == "invalid_request_error"
    assert aws.item_count() == 0


SYSTEM = "You are a meticulous travel planner. " * 200  # over the 1,024-token minimum a cache needs
BUDGET_HEADERS = {"x-session-id": "ctx1", "x-ctxgate-budget": "4096"}


def first_travel_turn(api: ModuleType, context: Any) -> tuple[int, dict[str, str]]:
    first = {
        "model": "echo",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Lisbon in May, please."}],
    }
    status, headers, _ = call(
        api, context, load_event("chat_completion_stateful.json", body=first, headers=BUDGET_HEADERS)
    )
    return status, headers


def test_a_turn_reports_its_context_tokens_within_the_budget(api, lambda_context, aws):
    # GIVEN a new session with a long system prompt and a 4,096-token budget
    # WHEN its first turn is sent
    status, response_headers = first_travel_turn(api, lambda_context)
    # THEN the reply reports the context's size, which is within the budget
    assert status == 200 and int(response_headers["x-ctxgate-context-tokens"]) <= 4096


def test_context_inspection_reports_sections_turns_breakpoints_and_budget(api, lambda_context, aws):
    # GIVEN a session with a long system prompt, a 4,096-token budget and 13 turns
    first_travel_turn(api, lambda_context)
    for i in range(12):
        follow = {"model": "echo", "messages": [{"role": "user", "content": f"Day {i}: museums, food and a walk."}]}
        call(api, lambda_context, load_event("chat_completion_stateful.json", body=follow, headers=BUDGET_HEADERS))
    # WHEN the client inspects the context a next message would get
    status, _, body = call(
        api, lambda_context, route_event("GET", "/v1/sessions/ctx1/context", query={"message": "What about day 3?"})
    )
    # THEN it sees every section in order, where each turn went, the budget, and cache breakpoints past 1,024 tokens
    plan = json.loads(body)
    assert status == 200 and plan["object"] == "session.context"
    assert [s["name"] for s in plan["sections"]] == ["system", "pins", "summaries", "recent", "recalled", "new"]
    assert plan["budget"]["budget_tokens"] == 4096 and plan["budget"]["used_tokens"] <= plan["budget"]["input_budget"]
    assert set(plan["turns"]) == {"included", "summarised", "recalled", "evicted"}
    assert plan["breakpoints"] and plan["breakpoints"][0]["section"] == "system"
    assert all(b["tokens_before"] >= 1024 for b in plan["breakpoints"])


def test_inspecting_the_context_of_an_unknown_session_is_a_404(api, lambda_context, aws):
    # GIVEN no session "nope"
    # WHEN the client inspects its context
    status = call(api, lambda_context, route_event("GET", "/v1/sessions/nope/context"))[0]
    # THEN it is a 404
    assert status == 404
