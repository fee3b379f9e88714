"""End to end: the Responses and Conversations APIs of ``ctxgate local`` driven by the official ``openai`` SDK.

The echo model answers ``[echo] received {n} messages; last: {text}``, so ``n`` shows exactly which history the
gateway sent it: with no instructions, a response's context is its history plus its own input."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from ctxgate.cli_usage import LOCAL_USAGE_TABLE as USAGE_TABLE
from pydantic import BaseModel

from tests.e2e.conftest import LocalGateway, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e
OTHER_TENANT_KEY = "ctg_responsesOtherTenant000000000000000000000000"
WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalGateway]:
    running = start_gateway("--api-key", f"{OTHER_TENANT_KEY}:tenant-other")
    yield running
    stop_gateway(running)


def sdk(gateway: LocalGateway, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key or gateway.api_key, max_retries=0)


def echo(n: int, text: str) -> str:
    return f"[echo] received {n} messages; last: {text}"


def chain(client: openai.OpenAI) -> list:
    first = client.responses.create(model="echo", input="Plan a trip to Lisbon.")
    second = client.responses.create(model="echo", input="Add a day in Sintra.", previous_response_id=first.id)
    third = client.responses.create(model="echo", input="Book the hotel.", previous_response_id=second.id)
    return [first, second, third]


def test_a_three_response_chain_carries_its_history(gateway):
    # GIVEN/WHEN three responses, each naming the previous one
    first, second, third = chain(sdk(gateway))
    # THEN each saw the whole history before it: 1, 3 and 5 messages
    assert first.output_text == echo(1, "Plan a trip to Lisbon.")
    assert second.output_text == echo(3, "Add a day in Sintra.")
    assert third.output_text == echo(5, "Book the hotel.")
    assert third.previous_response_id == second.id and third.status == "completed" and third.object == "response"
    assert third.usage is not None and third.usage.input_tokens > 0
    assert third.usage.input_tokens_details.cached_tokens == 0


def test_a_fork_from_the_first_response_sees_only_the_first_exchange_and_leaves_the_chain_alone(gateway):
    client = sdk(gateway)
    first, second, third = chain(client)
    # WHEN a response continues from the first one
    fork = client.responses.create(model="echo", input="Rather Porto.", previous_response_id=first.id)
    # THEN it sees the first exchange plus its own input, and the chain continues as before
    assert fork.output_text == echo(3, "Rather Porto.")
    after_fork = client.responses.create(model="echo", input="And a taxi.", previous_response_id=third.id)
    assert after_fork.output_text == echo(7, "And a taxi.")
    again = client.responses.create(model="echo", input="And a train.", previous_response_id=fork.id)
    assert again.output_text == echo(5, "And a train.")
    assert [i.content[0].text for i in client.responses.input_items.list(second.id).data] == ["Add a day in Sintra."]


def test_instructions_are_not_carried_over(gateway):
    client = sdk(gateway)
    first = client.responses.create(model="echo", input="Hello.", instructions="Answer in French.")
    second = client.responses.create(model="echo", input="Again.", previous_response_id=first.id)
    # the system message counted once in the first response, not in the second
    assert first.output_text == echo(2, "Hello.") and first.instructions == "Answer in French."
    assert second.output_text == echo(3, "Again.") and second.instructions is None


def test_a_conversation_across_five_responses(gateway):
    client = sdk(gateway)
    conversation = client.conversations.create(
        items=[{"role": "user", "content": "We are planning a garden."}], metadata={"topic": "garden"}
    )
    for index in range(5):
        response = client.responses.create(model="echo", input=f"Step {index}.", conversation=conversation.id)
        assert response.output_text == echo(2 * index + 2, f"Step {index}.")
        assert response.conversation is not None and response.conversation.id == conversation.id
    items = client.conversations.items.list(conversation.id, order="asc", limit=100).data
    assert len(items) == 11 and items[0].content[0].text == "We are planning a garden."
    assert [i.role for i in items] == ["user"] + ["user", "assistant"] * 5
    assert client.conversations.retrieve(conversation.id).metadata == {"topic": "garden"}


def test_conversation_items_and_metadata_can_be_managed(gateway):
    client = sdk(gateway)
    conversation = client.conversations.create(items=[{"role": "user", "content": "Keep this."}])
    added = client.conversations.items.create(
        conversation.id, items=[{"type": "message", "role": "user", "content": "Drop this."}]
    )
    dropped = added.data[0].id
    assert client.conversations.items.retrieve(dropped, conversation_id=conversation.id).content[0].text == "Drop this."
    client.conversations.items.delete(dropped, conversation_id=conversation.id)
    response = client.responses.create(model="echo", input="What is kept?", conversation=conversation.id)
    assert response.output_text == echo(2, "What is kept?")  # the deleted item is out of the context
    assert client.conversations.update(conversation.id, metadata={"k": "v"}).metadata == {"k": "v"}
    assert client.conversations.delete(conversation.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)  # a conversation's responses go with it


def test_a_function_call_round_trip(gateway):
    client = sdk(gateway)
    # GIVEN a model that calls the tool (the echo model calls it when asked with "/call")
    called = client.responses.create(model="echo", input='/call get_weather {"city": "Lisbon"}', tools=[WEATHER_TOOL])
    call = called.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Lisbon"} and call.id.startswith("fc_")
    # WHEN the client sends the tool's output back
    answered = client.responses.create(
        model="echo",
        previous_response_id=called.id,
        tools=[WEATHER_TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'}],
    )
    # THEN the model saw the request, its call and the output
    assert answered.output_text == echo(3, '/call get_weather {"city": "Lisbon"}')
    kinds = [i.type for i in client.responses.input_items.list(answered.id).data]
    assert kinds == ["function_call_output"]


def test_a_streamed_response_through_the_sdk_helper(gateway):
    client = sdk(gateway)
    first = client.responses.create(model="echo", input="Hello.")
    with client.responses.stream(model="echo", input="Stream this.", previous_response_id=first.id) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == echo(3, "Stream this.")
    assert events[:2] == ["response.created", "response.in_progress"] and events[-1] == "response.completed"
    assert "response.output_text.delta" in events and "response.output_item.done" in events
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_streamed_function_call(gateway):
    client = sdk(gateway)
    with client.responses.stream(
        model="echo", input='/call get_weather {"city": "Porto"}', tools=[WEATHER_TOOL]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in events and "response.function_call_arguments.done" in events
    assert final.output[0].type == "function_call" and json.loads(final.output[0].arguments) == {"city": "Porto"}


class EchoReport(BaseModel):
    received: int
    last: str


def test_a_structured_output_with_text_format(gateway):
    client = sdk(gateway)
    parsed = client.responses.parse(model="echo", input="Report.", text_format=EchoReport)
    assert parsed.output_parsed == EchoReport(received=1, last="Report.")
    assert parsed.text.format.type == "json_schema"


def test_an_output_that_breaks_the_schema_is_a_502_and_stores_nothing(gateway):
    client = sdk(gateway)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    first = client.responses.create(model="echo", input="Start.")
    with pytest.raises(openai.APIStatusError) as refused:
        client.responses.create(
            model="echo",
            input="Where?",
            previous_response_id=first.id,
            text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
        )
    assert refused.value.status_code == 502 and refused.value.code == "output_format_mismatch"
    after = client.responses.create(model="echo", input="Next.", previous_response_id=first.id)
    assert after.output_text == echo(3, "Next.")  # the refused turn was never stored


def test_store_false_leaves_nothing_behind(gateway):
    client = sdk(gateway)
    first = client.responses.create(model="echo", input="Remember me.")
    before = gateway.dynamodb_item_count(except_tables=(USAGE_TABLE,))
    unstored = client.responses.create(model="echo", input="Forget me.", previous_response_id=first.id, store=False)
    assert unstored.output_text == echo(3, "Forget me.") and unstored.store is False
    assert gateway.dynamodb_item_count(except_tables=(USAGE_TABLE,)) == before
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_a_deleted_response_is_gone(gateway):
    client = sdk(gateway)
    response = client.responses.create(model="echo", input="Short-lived.")
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="echo", input="Go on.", previous_response_id=response.id)


def test_another_tenants_responses_and_conversations_are_404(gateway):
    mine, theirs = sdk(gateway), sdk(gateway, OTHER_TENANT_KEY)
    response = mine.responses.create(model="echo", input="Secret plans.")
    conversation = mine.conversations.create(items=[{"role": "user", "content": "Secret chat."}])
    for attempt in (
        lambda: theirs.responses.retrieve(response.id),
        lambda: theirs.responses.input_items.list(response.id),
        lambda: theirs.responses.delete(response.id),
        lambda: theirs.responses.create(model="echo", input="Peek.", previous_response_id=response.id),
        lambda: theirs.conversations.retrieve(conversation.id),
        lambda: theirs.conversations.items.list(conversation.id),
        lambda: theirs.conversations.delete(conversation.id),
        lambda: theirs.responses.create(model="echo", input="Peek.", conversation=conversation.id),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert mine.responses.retrieve(response.id).output_text == echo(1, "Secret plans.")
    assert mine.conversations.retrieve(conversation.id).id == conversation.id


def test_a_conversation_is_a_session_for_the_session_routes(gateway):
    import httpx

    client = sdk(gateway)
    conversation = client.conversations.create()
    pinned = httpx.post(
        f"{gateway.base_url}/sessions/{conversation.id}/pins",
        json={"content": "Budget: 2000 EUR."},
        headers=gateway.auth,
    )
    assert pinned.status_code == 201
    response = client.responses.create(
        model="echo", input="Plan.", conversation=conversation.id, extra_headers={"X-Ctxgate-Budget": "4096"}
    )
    assert response.output_text == echo(2, "Plan.")  # the pin is in the context
    plan = httpx.get(f"{gateway.base_url}/sessions/{conversation.id}/context", headers=gateway.auth).json()
    assert plan["id"] == conversation.id and plan["budget"]["budget_tokens"] == 4096
    assert plan["turns"]["included"] == [1, 2]
