"""The Responses wire mapping: input items, tools and text.format to the internal model, and the rendering of
responses and stream events."""

from __future__ import annotations

import json

import pytest
from ctxgate.api.wire import responses as wire
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Usage
from ctxgate.responses.items import Item
from ctxgate.responses.models import ResponseRecord


def test_a_string_input_is_one_user_message():
    messages, system = wire.input_messages("Hello")
    assert [(m.role, m.content) for m in messages] == [("user", "Hello")] and system == []


def test_message_items_with_text_parts_and_developer_messages():
    messages, system = wire.input_messages(
        [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
        ]
    )
    assert [(m.role, m.text()) for m in messages] == [("user", "Hi"), ("assistant", "Hello")]
    assert system == ["Be brief."]


def test_consecutive_function_calls_are_one_assistant_turn_and_outputs_are_tool_messages():
    messages, _ = wire.input_messages(
        [
            {"role": "user", "content": "Weather?"},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Lisbon"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Porto"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]
    )
    assert [m.role for m in messages] == ["user", "assistant", "tool"]
    assert [c.id for c in messages[1].tool_calls] == ["c1", "c2"]
    assert messages[2].tool_call_id == "c1" and messages[2].content == "sunny"


@pytest.mark.parametrize(
    "item",
    [
        {"type": "input_image", "image_url": "x"},
        {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]},
        {"role": "tool", "content": "x"},
        {"type": "function_call", "name": "f"},
        {"type": "function_call_output", "output": "x"},
    ],
)
def test_items_ctxgate_cannot_honour_are_a_400(item):
    with pytest.raises(InvalidRequest):
        wire.input_messages([item])


def test_function_tools_and_tool_choice_map_to_chat_completions():
    tool = {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}
    assert wire.chat_tools([tool]) == [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True},
        }
    ]
    assert wire.chat_tool_choice({"type": "function", "name": "f"}) == {"type": "function", "function": {"name": "f"}}
    assert wire.chat_tool_choice("required") == "required"
    with pytest.raises(InvalidRequest):
        wire.chat_tools([{"type": "web_search"}])


def test_text_format_json_schema_becomes_a_response_format_and_parallel_calls_travel():
    body = wire.ResponseCreate(
        model="m",
        input="x",
        text={"format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}, "strict": True}},
        tools=[{"type": "function", "name": "f"}],
        parallel_tool_calls=False,
        max_output_tokens=50,
    )
    params = wire.generation_params(body, wire.output_format(body.text))
    assert params.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
    }
    assert params.max_tokens == 50 and params.extra == {"parallel_tool_calls": False}


@pytest.mark.parametrize("schema", [{"type": "nonsense"}, {"properties": {"a": {"$ref": "https://example.com/s"}}}])
def test_an_invalid_or_remote_json_schema_is_a_400(schema):
    with pytest.raises(InvalidRequest):
        wire.output_format({"format": {"type": "json_schema", "name": "r", "schema": schema}})


def record() -> ResponseRecord:
    return ResponseRecord(
        id="resp_1",
        created_at=1.5,
        model="echo",
        output=[
            Item(id="msg_1", type="message", role="assistant", text="Hello there"),
            Item(id="fc_1", type="function_call", call_id="c1", name="f", arguments='{"a":1}'),
        ],
        usage=Usage(prompt_tokens=10, completion_tokens=4, cached_tokens=6),
        settings={"temperature": 0.5},
    )


def test_the_response_object_follows_openais_schema():
    body = wire.response_body(record())
    assert body["object"] == "response" and body["status"] == "completed" and body["created_at"] == 1
    assert body["output"][0]["content"] == [
        {"type": "output_text", "text": "Hello there", "annotations": [], "logprobs": []}
    ]
    assert body["output"][1] == {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "c1",
        "name": "f",
        "arguments": '{"a":1}',
        "status": "completed",
    }
    assert body["usage"]["input_tokens_details"] == {"cached_tokens": 6} and body["usage"]["total_tokens"] == 14
    assert body["temperature"] == 0.5 and body["error"] is None and body["incomplete_details"] is None


def test_stream_events_are_numbered_and_rebuild_the_output():
    from ctxgate.api.wire.responses_stream import response_stream_events, sse_chunks
    from ctxgate.chat.models import ChatOutcome
    from ctxgate.messages import Completion, FunctionCall, Message, ToolCall
    from ctxgate.providers.streaming import replay
    from ctxgate.responses.items import message_items
    from ctxgate.responses.service import ResponseStream

    # GIVEN a stored response whose turn answered with text and a tool call
    message = Message(
        role="assistant",
        content="Hello there",
        tool_calls=[ToolCall(id="c1", function=FunctionCall(name="f", arguments='{"a":1}'))],
    )
    completion = Completion(message=message, finish_reason="tool_calls", usage=Usage(prompt_tokens=3))
    stored = record().model_copy(update={"output": message_items(message, "s1", 4)})
    opened = ResponseStream(stored, ChatOutcome(completion, Usage(), "echo"), "s1", 4, [stored])
    # WHEN its events are rendered
    events = list(response_stream_events(opened, replay(completion)))
    # THEN they are numbered, use the stored items' ids, and rebuild the output
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert text == "Hello there" and json.loads(arguments) == {"a": 1}
    added = [e["item"]["id"] for e in events if e["type"] == "response.output_item.added"]
    assert added == [i.id for i in stored.output]
    sse = b"".join(sse_chunks(iter(events[:1]))).decode()
    assert sse.startswith("event: response.created\ndata: {") and sse.endswith("\n\n")
