"""OpenAI Responses and Conversations wire formats: request validation, the mapping of items, tools and
``text.format`` to the internal message model, and the rendering of responses, items and stream events."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctxgate.errors import InvalidRequest
from ctxgate.messages import FunctionCall, GenerationParams, Message, ToolCall
from ctxgate.responses.items import Item
from ctxgate.responses.models import ConversationRecord, OutputFormat, ResponseRecord

Metadata = dict[str, str]
BodyT = TypeVar("BodyT", bound=BaseModel)


class ResponseCreate(BaseModel):
    """``POST /v1/responses``. Unknown fields are accepted and ignored (``include``, ``reasoning``, ...), as the
    chat route does; a field ctxgate cannot honour (a non-function tool, an image part) is a 400."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = None
    previous_response_id: str | None = Field(default=None, min_length=1, max_length=256)
    conversation: str | dict[str, Any] | None = None
    store: bool = True
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    text: dict[str, Any] | None = None
    metadata: Metadata | None = None
    truncation: Literal["auto", "disabled"] | None = None
    stream: bool = False


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[dict[str, Any]] | None = None
    metadata: Metadata | None = None


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    metadata: Metadata


class ItemsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[dict[str, Any]] = Field(min_length=1)


def parse_body(model: type[BodyT], body: str) -> BodyT:
    """Validate a JSON body; raises :class:`InvalidRequest` naming the first offending parameter."""
    try:
        parsed = model.model_validate_json(body or "")
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] in ("json_invalid", "json_type"):
            raise InvalidRequest(f"The request body is not valid JSON: {first['msg']}", code="invalid_json") from None
        param = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidRequest(f"Invalid value for {param or 'body'}: {first['msg']}", param=param) from None
    metadata = getattr(parsed, "metadata", None)
    if metadata is not None:
        check_metadata(metadata)
    return parsed


def check_metadata(metadata: Metadata) -> None:
    """OpenAI's limits: at most 16 pairs, keys up to 64 and values up to 512 characters."""
    if len(metadata) > 16 or any(len(k) > 64 or len(v) > 512 for k, v in metadata.items()):
        raise InvalidRequest("metadata holds at most 16 pairs, keys <= 64 and values <= 512 chars.", param="metadata")


# -- input items -> internal messages --------------------------------------------------------------------------


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content must be a string or a list of text parts.", param=where)
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
            raise InvalidRequest(
                f"{where}.content[{index}]: only input_text and output_text parts are supported.", param=where
            )
        if not isinstance(part.get("text"), str):
            raise InvalidRequest(f"{where}.content[{index}].text must be a string.", param=where)
        texts.append(part["text"])
    return "\n".join(texts)


def input_messages(value: str | list[dict[str, Any]], param: str = "input") -> tuple[list[Message], list[str]]:
    """The items as internal messages, and the texts of system/developer messages (they act as instructions).

    Consecutive ``function_call`` items (after an assistant message or not) become one assistant message with
    several tool calls, as Chat Completions expresses parallel calls."""
    if isinstance(value, str):
        return [Message(role="user", content=value)], []
    messages: list[Message] = []
    system: list[str] = []
    for index, item in enumerate(value):
        where = f"{param}[{index}]"
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            text = _text(item.get("content"), where)
            if role in ("system", "developer"):
                system.append(text)
            elif role in ("user", "assistant"):
                messages.append(Message(role=role, content=text))
            else:
                raise InvalidRequest(f"{where}.role must be user, assistant, system or developer.", param=where)
        elif kind == "function_call":
            call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "{}")
            if not all(isinstance(v, str) and v for v in (call_id, name)) or not isinstance(arguments, str):
                raise InvalidRequest(f"{where}: a function_call needs call_id, name and arguments.", param=where)
            call = ToolCall(id=call_id, function=FunctionCall(name=name, arguments=arguments))
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":  # parallel calls, or text then calls: one turn
                messages[-1] = last.model_copy(update={"tool_calls": [*(last.tool_calls or []), call]})
            else:
                messages.append(Message(role="assistant", tool_calls=[call]))
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{where}: a function_call_output needs a call_id.", param=where)
            messages.append(Message(role="tool", tool_call_id=call_id, content=_text(output, where)))
        else:
            raise InvalidRequest(f"{where}: items of type {kind!r} are not supported.", param=where)
    return messages, system


def conversation_id(value: str | dict[str, Any] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value.get("id"), str):
        return value["id"]
    raise InvalidRequest('conversation is an id or {"id": "conv_..."}.', param="conversation")


# -- tools and formats -----------------------------------------------------------------------------------------


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Responses function tools (flat) as Chat Completions tools (nested under ``function``)."""
    if not tools:
        return None
    mapped = []
    for index, tool in enumerate(tools):
        if tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise InvalidRequest(f"tools[{index}]: only function tools with a name are supported.", param="tools")
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        mapped.append({"type": "function", "function": function})
    return mapped


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest('tool_choice is "auto", "none", "required" or a function.', param="tool_choice")


def output_format(text: dict[str, Any] | None) -> OutputFormat:
    spec = (text or {}).get("format") or {"type": "text"}
    kind = spec.get("type") if isinstance(spec, dict) else None
    if kind in ("text", "json_object"):
        return OutputFormat(type=kind)
    if kind == "json_schema":
        schema, name = spec.get("schema"), spec.get("name")
        if not isinstance(schema, dict) or not isinstance(name, str) or not name:
            raise InvalidRequest("text.format json_schema needs a name and a schema object.", param="text.format")
        from jsonschema import Draft202012Validator, SchemaError

        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as error:
            raise InvalidRequest(f"text.format.schema is not a valid JSON Schema: {error.message[:200]}") from None
        if _external_refs(schema):  # validation must never fetch anything, nor fail after the model was paid
            raise InvalidRequest("text.format.schema may only use local $refs (#/...).", param="text.format")
        return OutputFormat(type="json_schema", name=name, schema=schema, strict=spec.get("strict"))
    raise InvalidRequest("text.format.type is text, json_object or json_schema.", param="text.format")


def _external_refs(node: Any) -> bool:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None and (not isinstance(ref, str) or not ref.startswith("#")):
            return True
        return any(_external_refs(v) for v in node.values())
    if isinstance(node, list):
        return any(_external_refs(v) for v in node)
    return False


def generation_params(wire: ResponseCreate, fmt: OutputFormat) -> GenerationParams:
    response_format: dict[str, Any] | None = None
    if fmt.type == "json_object":
        response_format = {"type": "json_object"}
    elif fmt.type == "json_schema":
        schema = {"name": fmt.name, "schema": fmt.schema, **({"strict": fmt.strict} if fmt.strict is not None else {})}
        response_format = {"type": "json_schema", "json_schema": schema}
    extra: dict[str, Any] = {}
    if wire.parallel_tool_calls is not None and wire.tools:
        extra["parallel_tool_calls"] = wire.parallel_tool_calls
    return GenerationParams(
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_output_tokens,
        tools=chat_tools(wire.tools),
        tool_choice=chat_tool_choice(wire.tool_choice),
        response_format=response_format,
        extra=extra,
    )


def echoed_settings(wire: ResponseCreate) -> dict[str, Any]:
    """The request's parameters as the response object echoes them."""
    return {
        "tools": wire.tools or [],
        "tool_choice": wire.tool_choice or "auto",
        "parallel_tool_calls": True if wire.parallel_tool_calls is None else wire.parallel_tool_calls,
        "temperature": wire.temperature,
        "top_p": wire.top_p,
        "max_output_tokens": wire.max_output_tokens,
        "text": {"format": (wire.text or {}).get("format") or {"type": "text"}},
        "truncation": wire.truncation or "auto",  # ctxgate budgets contexts by default (OpenAI: "disabled")
    }


# -- rendering -------------------------------------------------------------------------------------------------


def item_body(item: Item, *, status: str = "completed") -> dict[str, Any]:
    if item.type == "function_call":
        return {
            "id": item.id,
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments or "",
            "status": status,
        }
    if item.type == "function_call_output":
        return {"id": item.id, "type": "function_call_output", "call_id": item.call_id, "output": item.output or ""}
    role = item.role or "user"
    if role == "assistant":
        part: dict[str, Any] = {"type": "output_text", "text": item.text or "", "annotations": [], "logprobs": []}
    else:
        part = {"type": "input_text", "text": item.text or ""}
    return {"id": item.id, "type": "message", "role": role, "status": status, "content": [part]}


def response_body(
    record: ResponseRecord, *, status: str | None = None, output: bool = True, error: dict[str, str] | None = None
) -> dict[str, Any]:
    usage = record.usage
    settings = record.settings
    reason = record.incomplete_reason
    return {
        "id": record.id,
        "object": "response",
        "created_at": int(record.created_at),
        "status": status or record.status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": reason} if reason and (status or record.status) == "incomplete" else None,
        "instructions": record.instructions,
        "max_output_tokens": settings.get("max_output_tokens"),
        "model": record.model,
        "output": [item_body(i) for i in record.output] if output else [],
        "parallel_tool_calls": settings.get("parallel_tool_calls", True),
        "previous_response_id": record.previous_response_id,
        "conversation": {"id": record.conversation_id} if record.conversation_id else None,
        "reasoning": {"effort": None, "summary": None},
        "store": record.store,
        "temperature": settings.get("temperature"),
        "text": settings.get("text", {"format": {"type": "text"}}),
        "tool_choice": settings.get("tool_choice", "auto"),
        "tools": settings.get("tools", []),
        "top_p": settings.get("top_p"),
        "truncation": settings.get("truncation", "disabled"),
        "usage": {
            "input_tokens": usage.prompt_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens},
            "output_tokens": usage.completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": usage.total_tokens,
        }
        if output
        else None,
        "user": None,
        "metadata": record.metadata,
    }


def conversation_body(record: ConversationRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "conversation",
        "created_at": int(record.created_at),
        "metadata": record.metadata,
    }


def item_list_body(items: list[Item], has_more: bool) -> dict[str, Any]:
    data = [item_body(i) for i in items]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
