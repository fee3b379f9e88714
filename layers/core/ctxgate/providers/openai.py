"""OpenAI-compatible Chat Completions over httpx (OpenAI itself, vLLM, Ollama, LiteLLM, ...)."""

from __future__ import annotations

from typing import Any

from ctxgate.messages import Completion, Message, ProviderRequest, Usage
from ctxgate.providers.base import HttpProvider, ProviderRejected, TransientProviderError

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HttpProvider):
    name = "openai"
    default_base_url = DEFAULT_BASE_URL

    def payload(self, request: ProviderRequest) -> dict[str, Any]:
        params = request.params
        body: dict[str, Any] = {"model": request.upstream_model, "messages": [m.wire() for m in request.messages]}
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "tools", "tool_choice", "response_format"):
            value = getattr(params, key)
            if value is not None:
                body[key] = value
        body.update(params.extra)
        return body

    def complete(self, request: ProviderRequest) -> Completion:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        data = self.post("/chat/completions", self.payload(request), headers)
        try:
            choice = data["choices"][0]
            message = Message.model_validate({**choice["message"], "role": "assistant"})
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise TransientProviderError(f"openai returned an unreadable body: {str(data)[:200]}") from error
        usage = None
        if isinstance(data.get("usage"), dict):
            raw = data["usage"]
            cached = (raw.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            usage = Usage(
                prompt_tokens=raw.get("prompt_tokens", 0),
                completion_tokens=raw.get("completion_tokens", 0),
                cached_tokens=cached,
            )
        finish = choice.get("finish_reason") or "stop"
        if finish not in ("stop", "length", "tool_calls", "content_filter"):
            finish = "stop"
        if message.content is None and not message.tool_calls:
            raise ProviderRejected("openai returned an empty message")
        return Completion(message=message, finish_reason=finish, usage=usage)
