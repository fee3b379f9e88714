"""The gateway façade: turns validated HTTP inputs into domain calls and domain results into HTTP results.

Handlers (``functions/api/app.py``) stay thin: they pass the raw body, headers and path/query values here and
render the :class:`HttpResult`. The façade is built once per process from :mod:`ctxgate.settings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from ctxgate.api.schema import completion_body, completion_stream, parse_chat_request
from ctxgate.errors import InvalidRequest, NotFound, PayloadTooLarge
from ctxgate.providers.registry import ModelRouter, load_models
from ctxgate.retry import RetryPolicy
from ctxgate.sessions.service import ChatRequest, ChatService
from ctxgate.settings import Settings, get_settings

SESSION_HEADER = "x-session-id"
TURN_HEADER = "X-Ctxgate-Turn"
MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass
class HttpResult:
    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def text(self) -> str:
        return self.body if isinstance(self.body, str) else json.dumps(self.body, separators=(",", ":"))


class Gateway:
    def __init__(self, settings: Settings, service: ChatService, router: ModelRouter) -> None:
        self.settings = settings
        self.service = service
        self.router = router

    @classmethod
    def from_settings(cls, settings: Settings) -> Gateway:
        from ctxgate.adapters.dynamodb_sessions import DynamoSessionStore
        from ctxgate.adapters.s3_blobs import S3BlobStore

        policy = RetryPolicy(max_attempts=settings.retry_max_attempts, deadline=settings.retry_deadline_seconds)
        router = ModelRouter(load_models(settings.models_file), policy, timeout=settings.provider_timeout_seconds)
        store = DynamoSessionStore(
            settings.table_name,
            S3BlobStore(settings.bucket_name),
            ttl_seconds=settings.session_ttl_seconds,
            offload_threshold_bytes=settings.offload_threshold_bytes,
        )
        service = ChatService(
            store, router, ttl_seconds=settings.session_ttl_seconds, conflict_retries=settings.session_conflict_retries
        )
        return cls(settings, service, router)

    # -- routes ------------------------------------------------------------------------------------------------

    def chat_completions(self, body: str, headers: Mapping[str, str], tenant: str) -> HttpResult:
        if len(body.encode()) > self.settings.max_request_bytes:
            raise PayloadTooLarge(f"The request body exceeds {self.settings.max_request_bytes} bytes.")
        wire = parse_chat_request(body)
        request = ChatRequest(model=wire.model, messages=wire.messages, params=wire.params())
        session_id = _header(headers, SESSION_HEADER)
        if session_id is None:
            outcome = self.service.stateless(request)
            extra_headers: dict[str, str] = {}
        else:
            outcome = self.service.stateful(tenant, session_id, request)
            extra_headers = {"X-Session-Id": session_id, TURN_HEADER: str(outcome.turn)}
        if wire.stream:
            include_usage = bool((wire.stream_options or {}).get("include_usage"))
            sse = completion_stream(outcome.completion, outcome.usage, wire.model, include_usage=include_usage)
            return HttpResult(200, sse, {**extra_headers, "Cache-Control": "no-cache"}, "text/event-stream")
        return HttpResult(200, completion_body(outcome.completion, outcome.usage, wire.model), extra_headers)

    def get_session(self, session_id: str, query: Mapping[str, str], tenant: str) -> HttpResult:
        after = _int_query(query, "after", 0, minimum=0)
        limit = _int_query(query, "limit", DEFAULT_PAGE, minimum=1, maximum=MAX_PAGE)
        found = self.service.session(tenant, session_id, after=after, limit=limit)
        if found is None:
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        meta, page = found
        return HttpResult(
            200,
            {
                "id": meta.session_id,
                "object": "session",
                "created_at": int(meta.created_at),
                "updated_at": int(meta.updated_at),
                "expires_at": meta.expires_at,
                "system_prompt": meta.system_prompt,
                "model": meta.model,
                "turn_count": meta.last_seq,
                "turns": [
                    {"turn": t.seq, **t.message.wire(), "tokens": t.tokens, "created_at": int(t.created_at)}
                    for t in page.turns
                ],
                "has_more": page.next_after is not None,
                "next_after": page.next_after,
            },
        )

    def delete_session(self, session_id: str, tenant: str) -> HttpResult:
        if not self.service.delete(tenant, session_id):
            raise NotFound(f"No session {session_id!r}.", code="session_not_found")
        return HttpResult(200, {"id": session_id, "object": "session.deleted", "deleted": True})

    def models(self) -> HttpResult:
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": m.provider} for m in self.router.models.values()
        ]
        return HttpResult(200, {"object": "list", "data": data})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _int_query(query: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"Query parameter {name} must be an integer.", param=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise InvalidRequest(f"Query parameter {name} must be between {minimum} and {maximum}.", param=name)
    return value


@cache
def get_gateway() -> Gateway:
    """The process-wide gateway (built on first use, so cold start pays only for imports)."""
    return Gateway.from_settings(get_settings())


def resolve_tenant(event: Mapping[str, Any], settings: Settings | None = None) -> str:
    """The tenant of a request. Until authentication lands it is the configured default; it will come only from
    the authorizer's context (``requestContext.authorizer``), never from the request body."""
    return (settings or get_settings()).default_tenant
