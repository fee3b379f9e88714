"""Anthropic Messages wire format, request side: validation of ``POST /v1/messages`` and
``POST /v1/messages/count_tokens`` bodies, and their mapping onto the one internal message model.

What maps where:

- ``system`` (a string or text blocks) becomes the leading system message; ``messages`` become user/assistant
  messages. A user message's ``tool_result`` blocks become ``tool`` messages (in block order, the text blocks around
  them user messages); an assistant message's ``tool_use`` blocks become its ``tool_calls``.
- ``max_tokens``, ``temperature``, ``top_p`` and ``stop_sequences`` are the generation parameters of the same
  meaning; ``tools`` become function tools and ``tool_choice`` auto/any/tool/none becomes auto/required/
  {function}/none. ``top_k``, ``disable_parallel_tool_use`` (as ``parallel_tool_calls``) and ``metadata.user_id``
  (as ``user``) travel as extras, which each provider adapter forwards only if it has an equivalent.
- ``cache_control`` on a block marks a prompt-cache breakpoint after the message holding it (honoured for
  stateless requests; on a session ctxgate's context engine places the breakpoints itself).
- ctxgate's extension: ``"pin": true`` on a message pins its text to the session, as on Chat Completions.

Content other than text, tool_use and tool_result (images, documents, thinking), server tools and extended
thinking are refused with a 400 naming what is not supported, rather than silently dropped.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxgate.errors import InvalidRequest
from ctxgate.messages import ContentPart, FunctionCall, GenerationParams, Message, ToolCall

SUPPORTED_BLOCKS = "text, tool_use and tool_result"
TOOL_NAME = r"^[a-zA-Z0-9_-]{1,128}$"


class CacheControlEphemeral(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["ephemeral"]
    ttl: Literal["5m", "1h"] | None = None


class _Block(BaseModel):
    # Fields a block may carry that ctxgate does not use (``citations`` of a text block echoed back from a
    # response, ``caller`` of a tool_use block) are ignored, so an SDK's own response objects can be sent back.
    model_config = ConfigDict(extra="ignore", strict=True)

    cache_control: CacheControlEphemeral | None = None


class TextBlockParam(_Block):
    type: Literal["text"]
    text: str


class ToolUseBlockParam(_Block):
    type: Literal["tool_use"]
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(pattern=TOOL_NAME)
    input: dict[str, Any]


class ToolResultBlockParam(_Block):
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1, max_length=256)
    content: str | list[TextBlockParam] = ""
    is_error: bool = False

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(block.text for block in self.content)


ContentBlockParam = Annotated[TextBlockParam | ToolUseBlockParam | ToolResultBlockParam, Field(discriminator="type")]


class MessageParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"]
    content: str | list[ContentBlockParam]
    pin: bool = False
    """ctxgate's extension: pin this message's text to the session (stateful requests)."""

    def blocks(self) -> list[TextBlockParam | ToolUseBlockParam | ToolResultBlockParam]:
        return [TextBlockParam(type="text", text=self.content)] if isinstance(self.content, str) else list(self.content)


class ToolParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(pattern=TOOL_NAME)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: CacheControlEphemeral | None = None


class _ChoiceBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    disable_parallel_tool_use: bool | None = None


class ToolChoiceAutoParam(_ChoiceBase):
    type: Literal["auto"]


class ToolChoiceAnyParam(_ChoiceBase):
    type: Literal["any"]


class ToolChoiceToolParam(_ChoiceBase):
    type: Literal["tool"]
    name: str = Field(pattern=TOOL_NAME)


class ToolChoiceNoneParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["none"]


ToolChoiceParam = Annotated[
    ToolChoiceAutoParam | ToolChoiceAnyParam | ToolChoiceToolParam | ToolChoiceNoneParam, Field(discriminator="type")
]


class MetadataParam(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: str | None = Field(default=None, max_length=256)


class MessagesInput(BaseModel):
    """What both routes read: the model, the conversation, its system prompt and its tools."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlockParam] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None

    def system_text(self) -> str:
        if isinstance(self.system, list):
            return "\n".join(block.text for block in self.system)
        return self.system or ""

    def chat_messages(self) -> list[Message]:
        """The internal messages: the system prompt (if any), then each message's blocks in order."""
        out = [Message(role="system", content=self.system_text())] if self.system_text() else []
        for message in self.messages:
            out.extend(_internal(message))
        return out

    def cache_points(self) -> list[int]:
        """Indices of :meth:`chat_messages` after which the client asked for a prompt-cache breakpoint."""
        points: list[int] = []
        index = -1
        if self.system_text():
            index = 0
            if isinstance(self.system, list) and any(b.cache_control for b in self.system):
                points.append(0)
        for message in self.messages:
            index += len(_internal(message))
            if any(block.cache_control for block in message.blocks()):
                points.append(index)
        return points

    def pinned(self) -> list[str]:
        return [_text_of(m.blocks()) for m in self.messages if m.pin and _text_of(m.blocks())]

    def function_tools(self) -> list[dict[str, Any]] | None:
        """The tools as the internal (OpenAI function) tool definitions."""
        if not self.tools:
            return None
        return [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    **({"description": tool.description} if tool.description else {}),
                    "parameters": tool.input_schema,
                },
            }
            for tool in self.tools
        ]

    def function_tool_choice(self) -> str | dict[str, Any] | None:
        choice = self.tool_choice
        if choice is None or not self.tools:
            return None
        if isinstance(choice, ToolChoiceToolParam):
            return {"type": "function", "function": {"name": choice.name}}
        return {"auto": "auto", "any": "required", "none": "none"}[choice.type]


class MessagesRequest(MessagesInput):
    """The body of ``POST /v1/messages``."""

    max_tokens: int = Field(ge=1)
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: list[Annotated[str, Field(min_length=1)]] | None = None
    metadata: MetadataParam | None = None
    stream: bool = False
    service_tier: Literal["auto", "standard_only"] | None = None
    """Accepted and ignored: the operator's configuration chooses the upstream and its tier."""

    def params(self) -> GenerationParams:
        extra: dict[str, Any] = {}
        if self.top_k is not None:
            extra["top_k"] = self.top_k
        choice = self.tool_choice
        if isinstance(choice, _ChoiceBase) and choice.disable_parallel_tool_use:
            extra["parallel_tool_calls"] = False
        if self.metadata is not None and self.metadata.user_id:
            extra["user"] = self.metadata.user_id
        return GenerationParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            stop=self.stop_sequences or None,
            tools=self.function_tools(),
            tool_choice=self.function_tool_choice(),
            extra=extra,
        )


class CountTokensRequest(MessagesInput):
    """The body of ``POST /v1/messages/count_tokens``."""


_Input = TypeVar("_Input", bound=MessagesInput)


def _text_of(blocks: list[Any]) -> str:
    return "\n".join(block.text for block in blocks if isinstance(block, TextBlockParam))


def _text_content(texts: list[str]) -> str | list[ContentPart]:
    return texts[0] if len(texts) == 1 else [ContentPart(type="text", text=text) for text in texts]


def _internal(message: MessageParam) -> list[Message]:
    blocks = message.blocks()
    if message.role == "assistant":
        texts = [b.text for b in blocks if isinstance(b, TextBlockParam) and b.text]
        calls = [
            ToolCall(id=b.id, function=FunctionCall(name=b.name, arguments=json.dumps(b.input)))
            for b in blocks
            if isinstance(b, ToolUseBlockParam)
        ]
        content = _text_content(texts) if texts else (None if calls else "")
        return [Message(role="assistant", content=content, tool_calls=calls or None)]
    out: list[Message] = []
    texts: list[str] = []
    for block in blocks:
        if isinstance(block, ToolResultBlockParam):
            if texts:
                out.append(Message(role="user", content=_text_content(texts)))
                texts = []
            out.append(Message(role="tool", tool_call_id=block.tool_use_id, content=block.text()))
        elif isinstance(block, TextBlockParam) and block.text:
            texts.append(block.text)
    if texts:
        out.append(Message(role="user", content=_text_content(texts)))
    return out


def parse_messages_request(body: str) -> MessagesRequest:
    """Validate a ``POST /v1/messages`` body. Raises :class:`InvalidRequest` naming the first offending field."""
    request = _parse(MessagesRequest, body)
    _check(request)
    return request


def parse_count_tokens_request(body: str) -> CountTokensRequest:
    """Validate a ``POST /v1/messages/count_tokens`` body, as :func:`parse_messages_request` does."""
    request = _parse(CountTokensRequest, body)
    _check(request)
    return request


def _parse(model: type[_Input], body: str) -> _Input:
    try:
        return model.model_validate_json(body or "")
    except ValidationError as error:
        raise _invalid(error) from None


def _invalid(error: ValidationError) -> InvalidRequest:
    """The clearest of pydantic's errors: for a field that is "a string or a list of blocks", the complaint about
    the branch the client meant (the list's, when it sent a list), and an unsupported block or tool type before
    anything else wrong with it."""
    errors = error.errors()
    if errors[0]["type"] in ("json_invalid", "json_type"):
        return InvalidRequest(f"The request body is not valid JSON: {errors[0]['msg']}", code="invalid_json")
    meant = [e for e in errors if "str" not in e["loc"] and e["type"] != "list_type"] or errors
    tag = next((e for e in meant if e["type"] == "union_tag_invalid"), None)
    tool_type = next((e for e in meant if e["loc"][:1] == ("tools",) and e["loc"][-1:] == ("type",)), None)
    first = tag or tool_type or meant[0]
    loc = [str(part) for part in first["loc"] if not (isinstance(part, str) and ("[" in part or part == "str"))]
    param = ".".join(loc) or None
    if first is tag:
        found = (first.get("ctx") or {}).get("tag")
        return InvalidRequest(
            f"{param}: blocks of type `{found}` are not supported by ctxgate (only {SUPPORTED_BLOCKS}).",
            code="unsupported_content",
            param=param,
        )
    if first is tool_type:
        return InvalidRequest(
            f"{param}: only custom tools (name, description, input_schema) are supported by ctxgate.",
            code="unsupported_tool",
            param=param,
        )
    if first["type"] == "extra_forbidden" and len(loc) == 1:
        return InvalidRequest(
            f"`{loc[0]}` is not supported by ctxgate's Messages API.", code="unsupported_parameter", param=param
        )
    if "str" in first["loc"]:
        return InvalidRequest(f"{param} must be a string or a list of content blocks.", param=param)
    return InvalidRequest(f"Invalid value for {param or 'body'}: {first['msg']}", param=param)


def _check(request: MessagesInput) -> None:
    """The rules a schema cannot say: which blocks each role may carry, non-empty user turns, tool schemas."""
    for index, message in enumerate(request.messages):
        param = f"messages.{index}.content"
        blocks = message.blocks()
        if message.role == "user" and any(isinstance(b, ToolUseBlockParam) for b in blocks):
            raise InvalidRequest(f"{param}: tool_use blocks belong to assistant messages.", param=param)
        if message.role == "assistant" and any(isinstance(b, ToolResultBlockParam) for b in blocks):
            raise InvalidRequest(f"{param}: tool_result blocks belong to user messages.", param=param)
        if message.role == "user" and not any(isinstance(b, ToolResultBlockParam) or b.text for b in blocks):
            raise InvalidRequest(f"{param}: a user message needs non-empty content.", param=param)
    names = [tool.name for tool in request.tools or ()]
    if len(set(names)) != len(names):
        raise InvalidRequest("tools: tool names must be unique.", param="tools")
    for index, tool in enumerate(request.tools or ()):
        if tool.input_schema.get("type") != "object":
            param = f"tools.{index}.input_schema"
            raise InvalidRequest(f'{param}: a tool input schema is a JSON Schema with "type": "object".', param=param)
    choice = request.tool_choice
    if isinstance(choice, ToolChoiceToolParam) and choice.name not in names:
        raise InvalidRequest(f"tool_choice: no tool named `{choice.name}` in tools.", param="tool_choice.name")
