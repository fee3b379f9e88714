"""Conversation items: the Responses API's view of a session's turns.

A turn yields one item, or several for an assistant turn with tool calls (its text, then one ``function_call``
per call). Item ids are derived from (session, seq, index), so they are stable without being stored, and an id
tells which turn it names.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import BaseModel

from ctxgate.messages import FunctionCall, Message, ToolCall
from ctxgate.sessions.models import Turn

ItemType = Literal["message", "function_call", "function_call_output"]
PREFIXES: dict[str, str] = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}
ITEM_ID = re.compile(r"^(msg|fc|fco)_([0-9a-f]{8})([0-9a-f]{2})([0-9a-f]{24})$")


class Item(BaseModel):
    id: str
    type: ItemType
    role: Literal["user", "assistant", "system"] | None = None
    text: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


def item_id(kind: str, session_id: str, seq: int, index: int) -> str:
    tag = hashlib.sha256(f"{session_id}:{seq}:{index}".encode()).hexdigest()[:24]
    return f"{PREFIXES[kind]}_{seq:08x}{index:02x}{tag}"


def parse_item_id(session_id: str, value: str) -> tuple[int, int] | None:
    """(seq, index) of an item id of ``session_id``'s history (ancestors' turns keep their owner's ids), or None."""
    match = ITEM_ID.fullmatch(value)
    if match is None:
        return None
    return int(match.group(2), 16), int(match.group(3), 16)


def message_items(message: Message, session_id: str, seq: int) -> list[Item]:
    """The items of one stored message (``session_id`` owns the turn)."""
    if message.role == "tool":
        kind = "function_call_output"
        return [
            Item(id=item_id(kind, session_id, seq, 0), type=kind, call_id=message.tool_call_id, output=message.text())
        ]
    items: list[Item] = []
    text = message.text()
    if text or not message.tool_calls:
        role = "assistant" if message.role == "assistant" else ("system" if message.role == "system" else "user")
        items.append(Item(id=item_id("message", session_id, seq, 0), type="message", role=role, text=text))
    for index, call in enumerate(message.tool_calls or (), start=1):
        items.append(
            Item(
                id=item_id("function_call", session_id, seq, index),
                type="function_call",
                call_id=call.id,
                name=call.function.name,
                arguments=call.function.arguments,
            )
        )
    return items


def turn_items(turn: Turn, owner: str) -> list[Item]:
    return [] if turn.deleted else message_items(turn.message, owner, turn.seq)


def without_item(message: Message, index: int) -> Message | None:
    """``message`` without its item ``index`` (see :func:`message_items`); None when nothing would remain."""
    calls = list(message.tool_calls or ())
    if index == 0:
        return message.model_copy(update={"content": None}) if calls else None
    del calls[index - 1]
    if not calls and not message.text():
        return None
    return message.model_copy(update={"tool_calls": calls or None})


def call_message(calls: list[tuple[str, str, str]], text: str | None = None) -> Message:
    """An assistant message with tool calls (call_id, name, arguments)."""
    tool_calls = [ToolCall(id=c, function=FunctionCall(name=n, arguments=a)) for c, n, a in calls]
    return Message(role="assistant", content=text, tool_calls=tool_calls)
