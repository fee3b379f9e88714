"""Canonical cache keys, cacheability and the ``Cache-Control`` request header.

The exact key is a SHA-256 over canonical JSON (sorted keys, no whitespace) of the tenant, the model, the fully
assembled messages and every parameter that can change the output. Key order and whitespace in the client's JSON
therefore never matter, and anything that changes the output always does.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from ctxgate.errors import InvalidRequest
from ctxgate.messages import GenerationParams, Message

# Parameters that cannot change the model's output; everything else (including unknown provider extras) is keyed.
NOT_OUTPUT_AFFECTING = frozenset({"user", "metadata", "store", "stream", "stream_options", "service_tier"})
KEY_VERSION = 1


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(canonical([KEY_VERSION, *parts]).encode()).hexdigest()


def params_key(params: GenerationParams) -> dict[str, Any]:
    """Every output-affecting parameter, with absent and null treated alike."""
    fields = params.model_dump(exclude={"extra"}, exclude_none=True)
    extras = {k: v for k, v in params.extra.items() if k not in NOT_OUTPUT_AFFECTING and v is not None}
    return {**fields, **extras}


def message_key(messages: list[Message]) -> list[dict[str, Any]]:
    return [m.model_dump(exclude_none=True) for m in messages]


def exact_key(tenant: str, model: str, messages: list[Message], params: GenerationParams) -> str:
    return _digest("exact", tenant, model, message_key(messages), params_key(params))


def context_fingerprint(tenant: str, model: str, messages: list[Message], params: GenerationParams) -> str:
    """What must be identical for a semantic hit: everything in the request except the last user message."""
    return _digest("semantic", tenant, model, message_key(messages[:-1]), params_key(params))


def is_deterministic(params: GenerationParams) -> bool:
    return params.temperature == 0 or params.seed is not None


@dataclass(frozen=True)
class CacheControl:
    no_cache: bool = False
    """Skip the lookup (the response may still be stored)."""
    no_store: bool = False
    """Do not store the response."""
    max_age: int | None = None
    """TTL in seconds of the stored entry."""


_DIRECTIVE = re.compile(r"^\s*([a-zA-Z-]+)\s*(?:=\s*\"?([^\",]*)\"?)?\s*$")


def parse_cache_control(header: str | None) -> CacheControl:
    if not header:
        return CacheControl()
    no_cache = no_store = False
    max_age = None
    for part in header.split(","):
        if not part.strip():
            continue
        match = _DIRECTIVE.match(part)
        if not match:
            raise InvalidRequest(f"Malformed Cache-Control directive {part.strip()!r}.", param="Cache-Control")
        name, value = match.group(1).lower(), match.group(2)
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            if value is None or not value.isdigit():
                raise InvalidRequest("Cache-Control max-age needs a number of seconds.", param="Cache-Control")
            max_age = int(value)
    return CacheControl(no_cache=no_cache, no_store=no_store, max_age=max_age)
