"""OpenAI-compatible Chat Completions over httpx (OpenAI itself, vLLM, Ollama, LiteLLM, ...).

The body is built from an allowlist: the named generation parameters, plus those of the client's other fields that
are documented Chat Completions parameters the gateway can honour (:data:`FORWARDED_EXTRAS`). Anything else a
client sends is dropped here, so a caller cannot reach upstream features the operator pays for or never meant to
expose (``store``, ``service_tier``, ``audio``, ``web_search_options``, ...).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

from ctxgate.messages import Completion, FinishReason, Message, ProviderRequest, Usage
from ctxgate.providers.base import HttpProvider, ProviderRejected, TransientProviderError
from ctxgate.providers.streaming import Finish, StreamEvent, TextDelta, ToolCallDelta, UsageReport

DEFAULT_BASE_URL = "https://api.openai.com/v1"
NAMED_PARAMETERS = ("temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice", "response_format")
# Documented Chat Completions parameters that change only sampling or reasoning, which the gateway passes on.
# Left out on purpose: stream/stream_options/n (the gateway's own), logprobs/top_logprobs (not rendered back),
# store/metadata (keep data at the provider), service_tier (changes the operator's price), audio/modalities/
# prediction/web_search_options (paid features and outputs the gateway does not render), functions/function_call
# (deprecated; use tools).
FORWARDED_EXTRAS = frozenset(
    {
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "max_completion_tokens",
        "parallel_tool_calls",
        "reasoning_effort",
        "verbosity",
        "user",
        "safety_identifier",
        "prompt_cache_key",
    }
)
TOOL_FUNCTION_FIELDS = ("name", "description", "parameters", "strict")

logger = logging.getLogger(__name__)


def _tool(tool: dict[str, Any]) -> dict[str, Any] | None:
    """A function tool reduced to its documented fields; other tool types are not forwarded."""
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        return None
    return {"type": "function", "function": {k: function[k] for k in TOOL_FUNCTION_FIELDS if k in function}}


class OpenAIProvider(HttpProvider):
    name = "openai"
    default_base_url = DEFAULT_BASE_URL

    def payload(self, request: ProviderRequest) -> dict[str, Any]:
        """The request body: only allowlisted fields (see the module docstring); the dropped names are logged."""
        params = request.params
        body: dict[str, Any] = {"model": request.upstream_model, "messages": [m.wire() for m in request.messages]}
        for key in NAMED_PARAMETERS:
            value = getattr(params, key)
            if value is not None:
                body[key] = value
        tools = [t for t in (_tool(tool) for tool in params.tools or ()) if t is not None]
        if tools:
            body["tools"] = tools
        body.update({k: v for k, v in params.extra.items() if k in FORWARDED_EXTRAS and v is not None})
        dropped = sorted(set(params.extra) - FORWARDED_EXTRAS)
        if dropped:
            logger.info("request fields not forwarded to openai", extra={"fields": dropped})
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        key = self.api_key
        if key:
            headers["authorization"] = f"Bearer {key}"
        return headers

    def complete(self, request: ProviderRequest) -> Completion:
        data = self.post("/chat/completions", self.payload(request), self._headers())
        try:
            choice = data["choices"][0]
            message = Message.model_validate({**choice["message"], "role": "assistant"})
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise TransientProviderError(f"openai returned an unreadable body: {str(data)[:200]}") from error
        if message.content is None and not message.tool_calls:
            raise ProviderRejected("openai returned an empty message")
        return Completion(message=message, finish_reason=_finish(choice.get("finish_reason")), usage=_usage(data))

    def stream(self, request: ProviderRequest) -> Iterator[StreamEvent]:
        """``stream: true`` with ``stream_options.include_usage``: each chunk's content and tool-call deltas as
        they arrive, then the usage chunk, then :class:`Finish`. A stream that ends without ``data: [DONE]`` (or
        carries an ``error`` object) was cut off and raises :class:`TransientProviderError`."""
        body = {**self.payload(request), "stream": True, "stream_options": {"include_usage": True}}
        finish: FinishReason | None = None
        for sse in self.post_stream("/chat/completions", body, self._headers()):
            if sse.data.strip() == "[DONE]":
                yield Finish(finish or "stop")
                return
            try:
                chunk = json.loads(sse.data)
            except ValueError as error:
                raise TransientProviderError(f"openai sent an unreadable chunk: {sse.data[:200]}") from error
            if not isinstance(chunk, dict) or "error" in chunk:
                raise TransientProviderError(f"openai stream failed: {str(chunk)[:300]}")
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") or {}
                    yield ToolCallDelta(
                        index=int(call.get("index", 0)),
                        id=call.get("id"),
                        name=function.get("name"),
                        arguments=function.get("arguments") or "",
                    )
                if choice.get("finish_reason"):
                    finish = _finish(choice["finish_reason"])
            usage = _usage(chunk)
            if usage is not None:
                yield UsageReport(usage)
        raise TransientProviderError("openai stream ended without [DONE]")


def _finish(value: str | None) -> FinishReason:
    return value if value in ("stop", "length", "tool_calls", "content_filter") else "stop"  # type: ignore[return-value]


def _usage(data: dict[str, Any]) -> Usage | None:
    raw = data.get("usage")
    if not isinstance(raw, dict):
        return None
    return Usage(
        prompt_tokens=raw.get("prompt_tokens", 0),
        completion_tokens=raw.get("completion_tokens", 0),
        cached_tokens=(raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0,
    )
