"""OpenAI-compatible Chat Completions over httpx (OpenAI itself, vLLM, Ollama, LiteLLM, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctxgate.messages import Completion, Message, ProviderRequest, Usage
from ctxgate.providers.base import ProviderRejected, TransientProviderError, raise_for_http_status

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    def __init__(
        self, *, base_url: str | None, api_key: str | None, timeout: float, client: httpx.Client | None = None
    ) -> None:
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self._client = client

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self.timeout)
        return self._client

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
        import httpx

        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        try:
            response = self.client.post(
                f"{self.base_url}/chat/completions", json=self.payload(request), headers=headers
            )
        except httpx.TransportError as error:  # connect/read timeouts, refused connections, protocol errors
            raise TransientProviderError(f"openai transport error: {error!r}") from error
        raise_for_http_status(response, "openai")
        try:
            data = response.json()
            choice = data["choices"][0]
            message = Message.model_validate({**choice["message"], "role": "assistant"})
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise TransientProviderError(f"openai returned an unreadable body: {response.text[:200]}") from error
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
