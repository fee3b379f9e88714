"""Amazon Bedrock through the Converse API (boto3 ``bedrock-runtime``).

The call's arguments are built from an allowlist (modelId, system, messages, inferenceConfig, toolConfig); the
client's other fields (``GenerationParams.extra``) are never forwarded, and ``additionalModelRequestFields`` (the
Converse API's pass-through to the model) is never set.
"""

from __future__ import annotations

import json
from typing import Any

from ctxgate.messages import Completion, FunctionCall, Message, ProviderRequest, ToolCall, Usage
from ctxgate.providers.base import (
    ProviderRejected,
    ProviderUnusable,
    TransientProviderError,
    alternate_roles,
    rejection_reason,
)

TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ServiceQuotaExceededException",
    }
)
REJECTED_CODES = frozenset({"ValidationException", "ModelErrorException"})
CACHE_POINT = {"cachePoint": {"type": "default"}}
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


def _content(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"toolResult": {"toolUseId": message.tool_call_id or "", "content": [{"text": message.text()}]}}]
    blocks: list[dict[str, Any]] = []
    if message.text():
        blocks.append({"text": message.text()})
    for call in message.tool_calls or ():
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except json.JSONDecodeError:
            arguments = {"_raw": call.function.arguments}
        blocks.append({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": arguments}})
    return blocks


def to_converse(request: ProviderRequest) -> dict[str, Any]:
    """Keyword arguments for ``bedrock-runtime.converse``."""
    kwargs: dict[str, Any] = {"modelId": request.upstream_model}
    points = set(request.cache_points)
    system: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        if message.role == "system" and message.text():
            system.append({"text": message.text()})
            if index in points:
                system.append(CACHE_POINT)
    if system:
        kwargs["system"] = system

    def blocks(index: int, message: Message) -> list[dict[str, Any]]:
        out = _content(message)
        return [*out, CACHE_POINT] if index in points and out else out

    kwargs["messages"] = alternate_roles(request.messages, blocks)
    params = request.params
    inference: dict[str, Any] = {}
    if params.output_limit() is not None:
        inference["maxTokens"] = params.output_limit()
    if params.temperature is not None:
        inference["temperature"] = params.temperature
    if params.top_p is not None:
        inference["topP"] = params.top_p
    if params.stop:
        inference["stopSequences"] = params.stop
    if inference:
        kwargs["inferenceConfig"] = inference
    if params.tools:
        tool_config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": t["function"]["name"],
                        "description": t["function"].get("description") or t["function"]["name"],
                        "inputSchema": {"json": t["function"].get("parameters") or {"type": "object"}},
                    }
                }
                for t in params.tools
                if t.get("type") == "function"
            ]
        }
        choice = params.tool_choice
        if isinstance(choice, dict):
            tool_config["toolChoice"] = {"tool": {"name": choice.get("function", {}).get("name", "")}}
        elif choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        elif choice == "auto":
            tool_config["toolChoice"] = {"auto": {}}
        kwargs["toolConfig"] = tool_config
    return kwargs


def from_converse(response: dict[str, Any]) -> Completion:
    blocks = response.get("output", {}).get("message", {}).get("content", [])
    text = "".join(b["text"] for b in blocks if "text" in b)
    calls = [
        ToolCall(
            id=b["toolUse"]["toolUseId"],
            function=FunctionCall(name=b["toolUse"]["name"], arguments=json.dumps(b["toolUse"].get("input", {}))),
        )
        for b in blocks
        if "toolUse" in b
    ]
    raw = response.get("usage") or {}
    usage = None
    if raw:
        usage = Usage(
            prompt_tokens=raw.get("inputTokens", 0)
            + raw.get("cacheReadInputTokens", 0)
            + raw.get("cacheWriteInputTokens", 0),
            completion_tokens=raw.get("outputTokens", 0),
            cached_tokens=raw.get("cacheReadInputTokens", 0),
        )
    message = Message(role="assistant", content=text or (None if calls else ""), tool_calls=calls or None)
    return Completion(
        message=message, finish_reason=STOP_REASONS.get(response.get("stopReason", ""), "stop"), usage=usage
    )


class BedrockProvider:
    def __init__(self, *, timeout: float, client: Any = None) -> None:
        self.timeout = timeout
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            # botocore's own retries are off: ctxgate's retry helper owns backoff, deadline and fallbacks.
            config = Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=self.timeout)
            self._client = boto3.client("bedrock-runtime", config=config)
        return self._client

    def complete(self, request: ProviderRequest) -> Completion:
        from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

        try:
            response = self.client.converse(**to_converse(request))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            message = f"bedrock {code}: {error.response.get('Error', {}).get('Message', '')}"
            if code in TRANSIENT_CODES:
                raise TransientProviderError(message) from error
            if code in REJECTED_CODES:
                raise ProviderRejected(message, reason=rejection_reason(message)) from error
            raise ProviderUnusable(message) from error
        except (ReadTimeoutError, ConnectionError) as error:
            raise TransientProviderError(f"bedrock transport error: {error!r}") from error
        return from_converse(response)
