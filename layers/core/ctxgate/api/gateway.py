"""The gateway façade: turns validated HTTP inputs into domain calls and domain results into HTTP results.

Handlers (``functions/api/app.py``) stay thin: they pass the raw body, headers and path/query values here and
render the :class:`HttpResult`. The façade is built once per process from :mod:`ctxgate.settings`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from ctxgate.agent.models import Run, Step
from ctxgate.agent.service import AgentService
from ctxgate.api.http import HttpResult
from ctxgate.api.schema import completion_body, completion_stream, parse_chat_request
from ctxgate.cache.keys import parse_cache_control
from ctxgate.cache.service import ResponseCache
from ctxgate.context.engine import ContextEngine
from ctxgate.context.models import Pin
from ctxgate.context.summarize import Summarizer
from ctxgate.errors import InvalidRequest, NotFound, PayloadTooLarge
from ctxgate.providers.registry import ModelRouter, load_models
from ctxgate.retry import RetryPolicy
from ctxgate.sessions.service import CacheOptions, ChatRequest, ChatService
from ctxgate.settings import Settings, get_settings

SESSION_HEADER = "x-session-id"
TURN_HEADER = "X-Ctxgate-Turn"
BUDGET_HEADER = "x-ctxgate-budget"
CONTEXT_TOKENS_HEADER = "X-Ctxgate-Context-Tokens"
CACHE_HEADER = "X-Ctxgate-Cache"
SIMILARITY_HEADER = "X-Ctxgate-Cache-Similarity"
OPT_IN_HEADER = "x-ctxgate-cache-opt-in"
THRESHOLD_HEADER = "x-ctxgate-cache-threshold"
MAX_PAGE = 1000
DEFAULT_PAGE = 100


class Gateway:
    def __init__(self, settings: Settings, service: ChatService, router: ModelRouter) -> None:
        self.settings = settings
        self.service = service
        self.router = router

    @classmethod
    def from_settings(cls, settings: Settings, router: ModelRouter | None = None) -> Gateway:
        """The gateway over the configured AWS resources; ``router`` replaces the one built from the models file."""
        router, engine = build_engine(settings, router)
        service = ChatService(
            engine.store,
            router,
            engine,
            cache=build_cache(settings),
            ttl_seconds=settings.session_ttl_seconds,
            conflict_retries=settings.session_conflict_retries,
        )
        return cls(settings, service, router)

    # -- routes ------------------------------------------------------------------------------------------------

    def chat_completions(self, body: str, headers: Mapping[str, str], tenant: str) -> HttpResult:
        if len(body.encode()) > self.settings.max_request_bytes:
            raise PayloadTooLarge(f"The request body exceeds {self.settings.max_request_bytes} bytes.")
        wire = parse_chat_request(body)
        budget = _header(headers, BUDGET_HEADER)
        request = ChatRequest(
            model=wire.model,
            messages=wire.chat_messages(),
            params=wire.params(),
            pins=wire.pinned(),
            budget_tokens=_int_value(budget, BUDGET_HEADER) if budget is not None else None,
            cache=cache_options(headers),
        )
        session_id = _header(headers, SESSION_HEADER)
        if session_id is None:
            outcome = self.service.stateless(tenant, request)
            extra_headers: dict[str, str] = {}
        else:
            outcome = self.service.stateful(tenant, session_id, request)
            extra_headers = {"X-Session-Id": session_id, TURN_HEADER: str(outcome.turn)}
            if outcome.plan is not None:
                extra_headers[CONTEXT_TOKENS_HEADER] = str(outcome.plan.input_tokens)
        if outcome.cache is not None:
            extra_headers[CACHE_HEADER] = outcome.cache.status
            if outcome.cache.similarity is not None:
                extra_headers[SIMILARITY_HEADER] = f"{outcome.cache.similarity:.4f}"
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

    def get_context(self, session_id: str, query: Mapping[str, str], tenant: str) -> HttpResult:
        model = query.get("model") or None
        if model is not None:
            self.router.resolve(model)
        plan = self.service.inspect(tenant, session_id, query.get("message", ""), model)
        return HttpResult(200, {"id": session_id, **plan.inspection()})

    def add_pin(self, session_id: str, body: str, tenant: str) -> HttpResult:
        try:
            payload = json.loads(body or "")
        except ValueError:
            raise InvalidRequest("The request body is not valid JSON.", code="invalid_json") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("content"), str):
            raise InvalidRequest('A pin is {"content": "..."}.', param="content")
        pin = self.service.add_pin(tenant, session_id, payload["content"])
        return HttpResult(201, _pin_body(pin))

    def list_pins(self, session_id: str, tenant: str) -> HttpResult:
        return HttpResult(
            200, {"object": "list", "data": [_pin_body(p) for p in self.service.pins(tenant, session_id)]}
        )

    def delete_pin(self, session_id: str, pin_id: str, tenant: str) -> HttpResult:
        if not self.service.delete_pin(tenant, session_id, pin_id):
            raise NotFound(f"No pin {pin_id!r} in session {session_id!r}.", code="pin_not_found")
        return HttpResult(200, {"id": pin_id, "object": "session.pin.deleted", "deleted": True})

    def create_run(self, body: str, tenant: str) -> HttpResult:
        from pydantic import ValidationError

        from ctxgate.agent.models import RunRequest

        try:
            request = RunRequest.model_validate_json(body or "")
        except ValidationError as error:
            first = error.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise InvalidRequest(f"Invalid run: {first['msg']}", param=param) from None
        run = get_agent().create(tenant, request)
        return HttpResult(202, {"id": run.id, "object": "run", "status": run.status})

    def get_run(self, run_id: str, tenant: str) -> HttpResult:
        run, steps = get_agent().get(tenant, run_id)
        return HttpResult(200, run_body(run, steps))

    def cancel_run(self, run_id: str, tenant: str) -> HttpResult:
        run = get_agent().cancel(tenant, run_id)
        return HttpResult(200, run_body(run, get_agent().runs.steps(tenant, run_id)))

    def models(self) -> HttpResult:
        data = [
            {"id": m.name, "object": "model", "created": 0, "owned_by": m.provider} for m in self.router.models.values()
        ]
        return HttpResult(200, {"object": "list", "data": data})


def _pin_body(pin: Pin) -> dict[str, Any]:
    return {
        "id": pin.id,
        "object": "session.pin",
        "content": pin.content,
        "tokens": pin.tokens,
        "created_at": int(pin.created_at),
    }


def build_engine(settings: Settings, router: ModelRouter | None = None) -> tuple[ModelRouter, ContextEngine]:
    """The router and the context engine over the configured DynamoDB table, S3 bucket and compaction queue."""
    from ctxgate.adapters.dynamodb_context import DynamoContextStore
    from ctxgate.adapters.s3_blobs import S3BlobStore
    from ctxgate.adapters.sqs_compaction import SqsCompactionQueue
    from ctxgate.context.config import context_config, recall_embedder, recall_reranker

    policy = RetryPolicy(max_attempts=settings.retry_max_attempts, deadline=settings.retry_deadline_seconds)
    router = router or ModelRouter(load_models(settings.models_file), policy, timeout=settings.provider_timeout_seconds)
    store = DynamoContextStore(
        settings.table_name,
        S3BlobStore(settings.bucket_name),
        ttl_seconds=settings.session_ttl_seconds,
        offload_threshold_bytes=settings.offload_threshold_bytes,
    )
    engine = ContextEngine(
        store,
        context_config(settings),
        summarizer=Summarizer(router, settings.summarizer_model or None),
        default_budget_tokens=settings.default_budget_tokens,
        queue=SqsCompactionQueue(settings.compaction_queue_url) if settings.compaction_queue_url else None,
        embedder=recall_embedder(settings),
        reranker=recall_reranker(settings),
    )
    return router, engine


def build_cache(settings: Settings) -> ResponseCache:
    """The response cache over the cache table (and the bucket for large responses), with EMF metrics."""
    from ctxgate.adapters.dynamodb_cache import DynamoCacheStore
    from ctxgate.adapters.metrics import CACHE_METRICS
    from ctxgate.adapters.s3_blobs import S3BlobStore
    from ctxgate.embeddings import get_embedder

    store = DynamoCacheStore(
        settings.cache_table_name,
        S3BlobStore(settings.bucket_name),
        offload_threshold_bytes=settings.offload_threshold_bytes,
    )
    kind = settings.embeddings
    embedder = None if kind == "off" else (lambda: get_embedder(kind))
    return ResponseCache(
        store,
        embedder,
        threshold=settings.semantic_threshold,
        default_ttl=settings.cache_ttl_seconds,
        metrics=CACHE_METRICS,
    )


def cache_options(headers: Mapping[str, str]) -> CacheOptions:
    """``Cache-Control`` (no-cache, no-store, max-age), the opt-in for non-deterministic requests, and a stricter
    semantic threshold."""
    threshold = _header(headers, THRESHOLD_HEADER)
    try:
        value = float(threshold) if threshold is not None else None
    except ValueError:
        raise InvalidRequest("X-Ctxgate-Cache-Threshold must be a number.", param=THRESHOLD_HEADER) from None
    opt_in = (_header(headers, OPT_IN_HEADER) or "").strip().lower() in ("1", "true", "yes", "on")
    return CacheOptions(control=parse_cache_control(_header(headers, "cache-control")), opt_in=opt_in, threshold=value)


def _int_value(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer.", param=name) from None


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
def get_agent() -> AgentService:
    """The agent-run service over the runs table, the runs queue and the state machine."""
    from ctxgate.adapters.aws import client
    from ctxgate.adapters.dynamodb_runs import DynamoRunStore
    from ctxgate.adapters.stepfunctions_runs import StepFunctionsExecutions
    from ctxgate.agent.service import AgentService, RunQueue

    settings = get_settings()
    queue = None
    if settings.runs_queue_url:
        queue = RunQueue(
            settings.runs_queue_url, lambda url, body: client("sqs").send_message(QueueUrl=url, MessageBody=body)
        )
    return AgentService(
        DynamoRunStore(settings.runs_table_name),
        get_gateway().service,
        queue=queue,
        executions=StepFunctionsExecutions(settings.state_machine_arn),
        tool_allowlist=settings.tool_allowed_hosts,
    )


def run_body(run: Run, steps: list[Step]) -> dict[str, Any]:
    """The public view of a run: its status, steps (tokens, timings, cache status), output and error."""
    return {
        "id": run.id,
        "object": "run",
        "status": run.status,
        "model": run.model,
        "session_id": run.session_id,
        "created_at": int(run.created_at),
        "updated_at": int(run.updated_at),
        "steps": [s.model_dump(exclude_none=True) for s in steps],
        "output": run.output,
        "error": {"error": run.error, "cause": run.cause} if run.error else None,
    }


@cache
def get_gateway() -> Gateway:
    """The process-wide gateway (built on first use, so cold start pays only for imports)."""
    return Gateway.from_settings(get_settings())


def resolve_tenant(event: Mapping[str, Any], settings: Settings | None = None) -> str:
    """The tenant of a request. Until authentication lands it is the configured default; it will come only from
    the authorizer's context (``requestContext.authorizer``), never from the request body."""
    return (settings or get_settings()).default_tenant
