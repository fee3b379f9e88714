"""The one internal message model. Every provider adapter converts to and from these types.

The shapes follow OpenAI Chat Completions closely (it is the wire format clients speak), but they are
ours: adapters never pass a client's raw JSON to a provider.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str = "{}"


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ContentPart(BaseModel):
    """A part of multi-part content. Text is understood by every adapter; other parts pass through to OpenAI."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text: the string content, or its text parts joined by newlines."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content if part.text is not None)

    def wire(self) -> dict[str, Any]:
        """The OpenAI wire form, without nulls."""
        return self.model_dump(exclude_none=True)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    """Input tokens the provider read from its prompt cache (part of ``prompt_tokens``)."""
    cache_write_tokens: int = 0
    """Input tokens the provider wrote to its prompt cache (part of ``prompt_tokens``; Anthropic and Bedrock report
    them, and Anthropic's Messages API shows them as ``cache_creation_input_tokens``)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class GenerationParams(BaseModel):
    """Sampling and tool parameters that travel with a request, in OpenAI's names."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """The client's other request fields, as sent. Each provider adapter forwards only those on its allowlist (e.g.
    the OpenAI adapter's ``reasoning_effort``, ``logit_bias``); unknown fields never reach an upstream."""

    def output_limit(self) -> int | None:
        """The cap on generated tokens, whichever of OpenAI's two names the client used."""
        return self.max_tokens or self.extra.get("max_completion_tokens")


class ProviderRequest(BaseModel):
    """What a provider adapter receives: the fully assembled messages for one upstream model."""

    upstream_model: str
    messages: list[Message]
    params: GenerationParams = Field(default_factory=GenerationParams)
    cache_points: list[int] = Field(default_factory=list)
    """Indices of messages after which a provider prompt-cache breakpoint belongs (Anthropic, Bedrock)."""


class Completion(BaseModel):
    """What a provider adapter returns."""

    message: Message
    finish_reason: FinishReason = "stop"
    usage: Usage | None = None
    """None when the provider reported no usage; the gateway then counts tokens itself."""
