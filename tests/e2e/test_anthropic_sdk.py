"""End to end: ``ctxgate local`` driven by the official ``anthropic`` SDK (``x-api-key``) through
``POST /v1/messages`` and ``POST /v1/messages/count_tokens``, on ``echo`` and on an ``anthropic``-provider model
whose upstream is a scripted loopback server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import anthropic
import httpx
import pytest

from tests.e2e.conftest import LocalGateway, start_gateway, stop_gateway
from tests.functional.test_agent_runs import Scripted, script

pytestmark = pytest.mark.e2e
TENANT_B_KEY = "ctg_e2emessagestenantb000000000000000000000000"
WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@dataclass
class World:
    gateway: LocalGateway
    upstream: Scripted

    def client(self, api_key: str | None = None, **options) -> anthropic.Anthropic:
        root = self.gateway.base_url.removesuffix("/v1")
        return anthropic.Anthropic(base_url=root, api_key=api_key or self.gateway.api_key, max_retries=0, **options)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    upstream = Scripted()
    config = tmp_path_factory.mktemp("messages") / "models.yaml"
    config.write_text(
        "models:\n"
        "  - {name: echo, provider: echo, upstream_model: echo}\n"
        f"  - {{name: claude, provider: anthropic, upstream_model: claude-x, base_url: '{upstream.url}'}}\n"
    )
    gateway = start_gateway("--config", str(config), "--api-key", f"{TENANT_B_KEY}:tenant-b")
    yield World(gateway, upstream)
    stop_gateway(gateway)
    upstream.server.shutdown()


def session_headers() -> dict[str, str]:
    return {"X-Session-Id": f"e2e-msg-{uuid.uuid4().hex[:8]}"}


def say(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def upstream_message(content: list[dict], stop_reason: str, **usage: int) -> dict:
    return {
        "id": f"msg_up_{uuid.uuid4().hex[:6]}",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 12, **usage},
    }


def test_create_stateless_with_a_system_prompt(world):
    message = world.client().messages.create(
        model="echo", max_tokens=128, system="Be brief.", messages=say("Hello, gateway.")
    )
    assert message.type == "message" and message.role == "assistant" and message.model == "echo"
    assert message.id.startswith("msg_") and message.stop_reason == "end_turn"
    assert [(b.type, b.text) for b in message.content] == [
        ("text", "[echo] received 2 messages; last: Hello, gateway.")
    ]
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0 and message._request_id


def test_stream_stateless_with_the_stream_helper(world):
    text = "stream this please " * 8
    with world.client().messages.stream(model="echo", max_tokens=128, messages=say(text)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == f"[echo] received 1 messages; last: {text}"
    assert final.content[0].text == "".join(pieces) and final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0


def test_create_with_stream_true_yields_anthropics_events(world):
    events = list(world.client().messages.create(model="echo", max_tokens=64, messages=say("Hi"), stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert {"content_block_start", "content_block_delta", "content_block_stop"} <= set(kinds)
    assert events[-2].delta.stop_reason == "end_turn"


def test_a_session_remembers_the_history_across_create_and_stream(world):
    # GIVEN a client that sends X-Session-Id on every request
    headers = session_headers()
    client = world.client(default_headers=headers)
    # WHEN three turns are sent, each with only its new message (the second one streamed)
    first = client.messages.with_raw_response.create(
        model="echo", max_tokens=128, system="You are a travel agent.", messages=say("Book Lisbon.")
    )
    assert first.parse().content[0].text == "[echo] received 2 messages; last: Book Lisbon."
    assert first.headers["x-session-id"] == headers["X-Session-Id"] and first.headers["x-ctxgate-turn"] == "2"
    with client.messages.stream(model="echo", max_tokens=128, messages=say("Window seat.")) as stream:
        second = stream.get_final_message()
    third = client.messages.create(model="echo", max_tokens=128, messages=say("And a hotel."))
    # THEN each turn saw the system prompt and every earlier exchange
    assert second.content[0].text == "[echo] received 4 messages; last: Window seat."
    assert third.content[0].text == "[echo] received 6 messages; last: And a hotel."
    stored = httpx.get(
        f"{world.gateway.base_url}/sessions/{headers['X-Session-Id']}", headers=world.gateway.auth, timeout=30
    ).json()
    assert [t["role"] for t in stored["turns"]] == ["user", "assistant"] * 3
    assert stored["system_prompt"] == "You are a travel agent."


def test_a_tool_use_round_trip_through_an_anthropic_upstream(world):
    # GIVEN an upstream that first asks for a tool, then answers with the tool's result
    world.upstream.routes["/v1/messages"] = script(
        upstream_message(
            [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}], "tool_use"
        ),
        upstream_message(
            [{"type": "text", "text": "It is 21 C and sunny in Lisbon."}], "end_turn", cache_read_input_tokens=30
        ),
    )
    world.upstream.requests.clear()
    client = world.client()
    question = say("What is the weather in Lisbon?")
    # WHEN the client offers the tool, runs the call it gets, and sends the result back with the SDK's own blocks
    first = client.messages.create(model="claude", max_tokens=256, tools=[WEATHER], messages=question)
    call = first.content[0]
    assert first.stop_reason == "tool_use" and call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("toolu_1", "get_weather", {"city": "Lisbon"})
    history = [
        *question,
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "21 C, sunny"}]},
    ]
    final = client.messages.create(model="claude", max_tokens=256, tools=[WEATHER], messages=history)
    # THEN the answer comes back, with the upstream's cache reads, and the upstream saw the call and its result
    assert final.content[0].text == "It is 21 C and sunny in Lisbon." and final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (50, 30)
    sent = world.upstream.requests["/v1/messages"]
    assert (
        sent[0]["tools"][0]["name"] == "get_weather" and sent[0]["tools"][0]["input_schema"] == WEATHER["input_schema"]
    )
    assert sent[1]["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Lisbon"}}
    ]
    assert sent[1]["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21 C, sunny"}
    ]


def test_a_tool_result_on_a_session_reaches_the_upstream_with_the_history(world):
    # GIVEN a session whose first turn ended in a tool call
    world.upstream.routes["/v1/messages"] = script(
        upstream_message(
            [{"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Porto"}}], "tool_use"
        ),
        upstream_message([{"type": "text", "text": "Porto: 18 C."}], "end_turn"),
    )
    world.upstream.requests.clear()
    client = world.client(default_headers=session_headers())
    first = client.messages.create(model="claude", max_tokens=256, tools=[WEATHER], messages=say("Weather in Porto?"))
    # WHEN the client sends only the tool's result
    result = [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[0].id, "content": "18 C"}]}
    ]
    final = client.messages.create(model="claude", max_tokens=256, tools=[WEATHER], messages=result)
    # THEN the upstream got the question, its own tool call and the result
    assert final.content[0].text == "Porto: 18 C."
    roles = [
        (m["role"], [b["type"] for b in m["content"]]) for m in world.upstream.requests["/v1/messages"][1]["messages"]
    ]
    assert roles == [("user", ["text"]), ("assistant", ["tool_use"]), ("user", ["tool_result"])]


def test_count_tokens_of_a_request_and_of_a_sessions_next_context(world):
    client = world.client()
    alone = client.messages.count_tokens(model="echo", messages=say("How long is this?")).input_tokens
    with_tools = client.messages.count_tokens(model="echo", messages=say("How long is this?"), tools=[WEATHER])
    assert 0 < alone < with_tools.input_tokens
    headers = session_headers()
    client.messages.create(
        model="echo", max_tokens=64, system="A long system prompt. " * 20, messages=say("Hi"), extra_headers=headers
    )
    on_session = client.messages.count_tokens(model="echo", messages=say("How long is this?"), extra_headers=headers)
    assert on_session.input_tokens > alone + 100


def test_bad_requests_raise_the_sdks_exceptions_and_store_nothing(world):
    client = world.client(default_headers={"X-Session-Id": "e2e-msg-bad-input"})
    before = world.gateway.dynamodb_item_count()
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model="echo",
            max_tokens=64,
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x"}}]}],
        )
    assert bad.value.type == "invalid_request_error" and "image" in bad.value.message
    assert bad.value.body["error"]["code"] == "unsupported_content" and bad.value.request_id
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="echo", max_tokens=0, messages=say("x"))
    with pytest.raises(anthropic.NotFoundError) as unknown:
        client.messages.create(model="claude-404", max_tokens=64, messages=say("x"))
    assert unknown.value.type == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError):
        world.client(api_key="ctg_not-a-key").messages.create(model="echo", max_tokens=64, messages=say("x"))
    assert world.gateway.dynamodb_item_count() == before


def test_another_tenants_session_is_not_reachable(world):
    # GIVEN tenant local's session
    headers = session_headers()
    mine = world.client(default_headers=headers)
    mine.messages.create(model="echo", max_tokens=64, system="Secret plans.", messages=say("Remember 1042."))
    # WHEN tenant b uses the same session id
    theirs = world.client(api_key=TENANT_B_KEY)
    counted = theirs.messages.count_tokens(model="echo", messages=say("What did I say?")).input_tokens
    on_session = theirs.messages.count_tokens(model="echo", messages=say("What did I say?"), extra_headers=headers)
    reply = theirs.messages.create(model="echo", max_tokens=64, messages=say("What did I say?"), extra_headers=headers)
    # THEN b counts and talks in a session of its own: no history, no size of local's context
    assert on_session.input_tokens == counted
    assert reply.content[0].text == "[echo] received 1 messages; last: What did I say?"
    url = f"{world.gateway.base_url}/sessions/{headers['X-Session-Id']}"
    assert httpx.get(url, headers={"x-api-key": TENANT_B_KEY}, timeout=30).json()["turn_count"] == 2
    assert (
        mine.messages.create(model="echo", max_tokens=64, messages=say("Again."))
        .content[0]
        .text.startswith("[echo] received 4 messages")
    )
