"""Context assembly and eviction planning (``ctxgate.context.assemble``), as pure functions."""

from __future__ import annotations

import json

import pytest
from ctxgate.context.assemble import ContextBudgetExceeded, ContextState, assemble_context, plan_eviction
from ctxgate.context.models import ContextConfig
from ctxgate.messages import FunctionCall, Message, ToolCall
from ctxgate.sessions.models import Turn
from ctxgate.tokens import count_message

from tests.unit.context.harness import user


def turn(seq: int, message: Message) -> Turn:
    return Turn(seq=seq, message=message, created_at=0, tokens=count_message(message))


def tool_history() -> list[Turn]:
    messages: list[Message] = []
    for i in range(6):
        messages.append(user(f"question {i} " + "words " * 20))
        call = ToolCall(id=f"c{i}", function=FunctionCall(name="lookup", arguments=json.dumps({"i": i})))
        messages.append(Message(role="assistant", tool_calls=[call, call.model_copy(update={"id": f"d{i}"})]))
        messages.append(Message(role="tool", tool_call_id=f"c{i}", content="result " * 15))
        messages.append(Message(role="tool", tool_call_id=f"d{i}", content="other " * 15))
        messages.append(Message(role="assistant", content=f"answer {i}"))
    return [turn(seq, m) for seq, m in enumerate(messages, start=1)]


@pytest.mark.parametrize("low_water", [0, 50, 120, 200, 300, 450, 10_000])
def test_eviction_never_splits_a_tool_call_from_its_results(low_water):
    history = tool_history()
    cut = plan_eviction(history, low_water)
    kept = [t for t in history if cut is None or t.seq > cut]
    if kept:
        assert kept[0].message.role == "user"
    ids_kept = {c.id for t in kept if t.message.tool_calls for c in t.message.tool_calls}
    for t in kept:
        if t.message.role == "tool":
            assert t.message.tool_call_id in ids_kept


def test_eviction_reaches_the_low_water_mark_in_one_chunk():
    history = tool_history()
    cut = plan_eviction(history, 200)
    assert cut is not None
    assert sum(t.tokens for t in history if t.seq > cut) <= 200


def test_nothing_is_evicted_when_the_history_is_under_the_low_water_mark():
    assert plan_eviction(tool_history(), 10_000) is None


def test_pins_and_new_message_that_cannot_fit_are_a_4xx():
    state = ContextState("sys", [], [], [], 0, budget_tokens=300, output_reserve=37)
    with pytest.raises(ContextBudgetExceeded) as caught:
        assemble_context(state, [user("word " * 400)], ContextConfig())
    assert caught.value.status == 400 and caught.value.code == "context_budget_exceeded"
