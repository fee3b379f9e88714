"""What a Responses API request asks for and what a stored response is, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from ctxgate.chat.models import CacheOptions
from ctxgate.messages import GenerationParams, Message, Usage
from ctxgate.responses.items import Item


@dataclass(frozen=True)
class OutputFormat:
    """``text.format``: free text, any JSON object, or JSON valid against ``schema``."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class ResponseRequest:
    model: str
    input: list[Message]
    """The new items as internal messages (system/developer messages already folded into ``instructions``)."""
    params: GenerationParams
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation: str | None = None
    store: bool = True
    truncation: Literal["auto", "disabled"] = "auto"
    output_format: OutputFormat = field(default_factory=OutputFormat)
    metadata: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    """The request's parameters as the client sent them, echoed in the response object (tools, text, ...)."""
    cache: CacheOptions = field(default_factory=CacheOptions)
    deadline: float | None = None
    budget_tokens: int | None = None
    """``X-Ctxgate-Budget``: the session's context budget, as on stateful chat completions (it persists)."""


class ResponseRecord(BaseModel):
    """A response as stored (and as returned for ``store: false``, without being stored)."""

    id: str
    created_at: float
    model: str
    status: Literal["completed", "incomplete"] = "completed"
    incomplete_reason: str | None = None
    session_id: str | None = None
    input_seq: int | None = None
    """Seq of the first turn holding this response's input; its output turn is ``output_seq``."""
    output_seq: int | None = None
    output: list[Item] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    served_by: str = ""
    instructions: str | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    store: bool = True


class ConversationRecord(BaseModel):
    id: str
    created_at: float
    metadata: dict[str, str] = Field(default_factory=dict)
