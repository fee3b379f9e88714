"""The Anthropic Messages wire format, request side (``ctxgate.api.wire.anthropic_messages``): validation and the
mapping onto the internal messages and generation parameters."""

from __future__ import annotations

import json

import pytest
from ctxgate.api.wire.anthropic_messages import parse_count_tokens_request, parse_messages_request
from ctxgate.errors import InvalidRequest
from ctxgate.messages import ContentPart, FunctionCall, Message, ToolCall

USER = {"role": "user", "content": "hi"}
WEATHER = {"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}


def body(**fields) -> str:
    return json.dumps({"model": "echo", "max_tokens": 64, "messages": [USER], **fields})


def user(*blocks: dict) -> dict:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict) -> dict:
    return {"role": "assistant", "content": list(blocks)}


def text(value: str, **extra) -> dict:
    return {"type": "text", "text": value, **extra}


def tool_use(id: str, name: str, input: dict) -> dict:
    return {"type": "tool_use", "id": id, "name": name, "input": input}


def tool_result(id: str, content: str | list) -> dict:
    return {"type": "tool_result", "tool_use_id": id, "content": content}


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        ("{not json", "invalid_json", None),
        (json.dumps({"model": "echo", "messages": [USER]}), "invalid_request", "max_tokens"),
        (body(max_tokens=0), "invalid_request", "max_tokens"),
        (body(messages=[]), "invalid_request", "messages"),
        (body(temperature=1.5), "invalid_request", "temperature"),
        (body(top_k=-1), "invalid_request", "top_k"),
        (body(stream="yes"), "invalid_request", "stream"),
        (body(messages=[{"role": "system", "content": "x"}]), "invalid_request", "messages.0.role"),
        (body(messages=[{"role": "user", "content": 7}]), "invalid_request", "messages.0.content"),
        (body(messages=[{"role": "user", "content": ""}]), "invalid_request", "messages.0.content"),
        (
            body(messages=[user({"type": "image", "source": {"type": "base64", "data": "x"}})]),
            "unsupported_content",
            "messages.0.content.0",
        ),
        (body(messages=[user(tool_use("t1", "f", {}))]), "invalid_request", "messages.0.content"),
        (body(messages=[assistant(tool_result("t1", "r"))]), "invalid_request", "messages.0.content"),
        (body(thinking={"type": "enabled", "budget_tokens": 1024}), "unsupported_parameter", "thinking"),
        (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), "unsupported_tool", "tools.0.type"),
        (body(tools=[{**WEATHER, "input_schema": {"type": "string"}}]), "invalid_request", "tools.0.input_schema"),
        (body(tools=[WEATHER, WEATHER]), "invalid_request", "tools"),
        (body(tools=[WEATHER], tool_choice={"type": "tool", "name": "other"}), "invalid_request", "tool_choice"),
    ],
)
def test_bad_requests_are_invalid_request_errors_naming_the_field(raw, code, param):
    with pytest.raises(InvalidRequest) as caught:
        parse_messages_request(raw)
    error = caught.value
    assert error.status == 400 and error.code == code and error.message
    if param is not None:
        assert error.param is not None and error.param.startswith(param), error.param


def test_a_system_string_leads_and_string_content_stays_a_string():
    request = parse_messages_request(body(system="Be brief.", messages=[USER, {"role": "assistant", "content": "ok"}]))
    assert request.chat_messages() == [
        Message(role="system", content="Be brief."),
        Message(role="user", content="hi"),
        Message(role="assistant", content="ok"),
    ]


def test_system_text_blocks_join_and_their_cache_control_is_a_breakpoint_after_the_system_message():
    system = [text("Rule one."), text("Rule two.", cache_control={"type": "ephemeral"})]
    request = parse_messages_request(body(system=system))
    assert request.chat_messages()[0] == Message(role="system", content="Rule one.\nRule two.")
    assert request.cache_points() == [0]


def test_tool_results_become_tool_messages_in_block_order():
    # GIVEN an assistant turn with text and two tool calls, answered by a user turn with both results and a remark
    messages = [
        {"role": "user", "content": "Weather in Lisbon and Porto?"},
        assistant(
            text("Checking."),
            tool_use("toolu_1", "get_weather", {"city": "Lisbon"}),
            tool_use("toolu_2", "get_weather", {"city": "Porto"}),
        ),
        user(tool_result("toolu_1", "21 C"), tool_result("toolu_2", [text("18 C"), text("windy")]), text("Thanks")),
    ]
    # WHEN it is mapped
    mapped = parse_messages_request(body(messages=messages, tools=[WEATHER])).chat_messages()
    # THEN the calls are the assistant's tool calls, and each result is a tool message before the user's text
    assert mapped[1] == Message(
        role="assistant",
        content="Checking.",
        tool_calls=[
            ToolCall(id="toolu_1", function=FunctionCall(name="get_weather", arguments='{"city": "Lisbon"}')),
            ToolCall(id="toolu_2", function=FunctionCall(name="get_weather", arguments='{"city": "Porto"}')),
        ],
    )
    assert mapped[2:] == [
        Message(role="tool", tool_call_id="toolu_1", content="21 C"),
        Message(role="tool", tool_call_id="toolu_2", content="18 C\nwindy"),
        Message(role="user", content="Thanks"),
    ]


def test_an_assistant_turn_of_tool_calls_only_has_no_text_content():
    messages = [USER, assistant(tool_use("toolu_1", "get_weather", {}))]
    mapped = parse_messages_request(body(messages=messages)).chat_messages()
    assert mapped[-1].content is None and mapped[-1].tool_calls is not None


def test_several_text_blocks_stay_separate_text_parts():
    mapped = parse_messages_request(body(messages=[user(text("Part one."), text("Part two."))])).chat_messages()
    assert mapped == [
        Message(
            role="user",
            content=[ContentPart(type="text", text="Part one."), ContentPart(type="text", text="Part two.")],
        )
    ]
    assert mapped[0].text() == "Part one.\nPart two."


def test_cache_control_on_a_block_is_a_breakpoint_after_the_internal_message_that_ends_its_turn():
    messages = [
        user(text("Long document.", cache_control={"type": "ephemeral"})),
        {"role": "assistant", "content": "Read."},
        USER,
    ]
    request = parse_messages_request(body(system="S", messages=messages))
    assert request.cache_points() == [1]


def test_sampling_parameters_map_to_their_internal_names_and_the_rest_travel_as_extras():
    raw = body(
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
        service_tier="auto",
    )
    params = parse_messages_request(raw).params()
    assert (params.max_tokens, params.temperature, params.top_p, params.stop) == (64, 0.2, 0.9, ["END"])
    assert params.extra == {"top_k": 40, "user": "user-7"}


@pytest.mark.parametrize(
    ("choice", "internal", "extra"),
    [
        ({"type": "auto"}, "auto", {}),
        ({"type": "any"}, "required", {}),
        ({"type": "none"}, "none", {}),
        ({"type": "tool", "name": "get_weather"}, {"type": "function", "function": {"name": "get_weather"}}, {}),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", {"parallel_tool_calls": False}),
    ],
)
def test_tools_become_function_tools_and_tool_choice_maps_to_its_equivalent(choice, internal, extra):
    params = parse_messages_request(body(tools=[WEATHER], tool_choice=choice)).params()
    assert params.tools == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather now", "parameters": {"type": "object"}},
        }
    ]
    assert params.tool_choice == internal and params.extra == extra


def test_pinned_messages_give_their_text_as_pins():
    messages = [{"role": "user", "content": "Always answer in French.", "pin": True}, USER]
    assert parse_messages_request(body(messages=messages)).pinned() == ["Always answer in French."]


def test_the_sdks_own_response_blocks_can_be_sent_back():
    # GIVEN an assistant turn built from response objects, with fields ctxgate does not use (citations, caller)
    turn = assistant(
        text("Checking.", citations=None), {**tool_use("toolu_1", "get_weather", {}), "caller": {"type": "direct"}}
    )
    messages = [USER, turn, user(tool_result("toolu_1", "21 C"))]
    # WHEN it is parsed THEN it is accepted as text and a tool call
    mapped = parse_messages_request(body(messages=messages)).chat_messages()
    assert mapped[1].text() == "Checking." and mapped[1].tool_calls is not None


def test_count_tokens_takes_no_max_tokens_and_refuses_generation_fields():
    raw = json.dumps({"model": "echo", "messages": [USER], "system": "S"})
    assert len(parse_count_tokens_request(raw).chat_messages()) == 2
    with pytest.raises(InvalidRequest) as caught:
        parse_count_tokens_request(json.dumps({"model": "echo", "messages": [USER], "max_tokens": 5}))
    assert caught.value.param == "max_tokens"
