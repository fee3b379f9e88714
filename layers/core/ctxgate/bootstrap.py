"""The composition root: the only module that builds adapters and services from settings.

Every Lambda handler, the CLI, the benchmarks and the tests get their services here. Builders import their
adapters when called, so a handler's cold start pays only for what its first request uses. The process-wide
services are built once (``functools.cache``); :func:`reset` forgets them (tests that change the environment).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from ctxgate.settings import Settings, get_settings

if TYPE_CHECKING:
    from ctxgate.adapters.dynamodb_context import DynamoContextStore
    from ctxgate.adapters.dynamodb_quotas import DynamoQuotaStore
    from ctxgate.adapters.sqs_compaction import SqsCompactionQueue
    from ctxgate.agent.service import AgentService
    from ctxgate.auth.authenticator import CachedAuthenticator
    from ctxgate.auth.keys import KeyService
    from ctxgate.cache.service import ResponseCache
    from ctxgate.chat.service import ChatService
    from ctxgate.chat.sessions import SessionService
    from ctxgate.context.engine import ContextEngine
    from ctxgate.context.ranking import Reranker
    from ctxgate.providers.registry import ModelRouter
    from ctxgate.quotas.service import SpendControl
    from ctxgate.responses.conversations import ConversationService
    from ctxgate.responses.service import ResponsesService


def build_router(settings: Settings) -> ModelRouter:
    """The model router over the configured models file."""
    from ctxgate.providers.registry import ModelRouter, load_models
    from ctxgate.retry import RetryPolicy

    policy = RetryPolicy(max_attempts=settings.retry_max_attempts, deadline=settings.retry_deadline_seconds)
    return ModelRouter(load_models(settings.models_file), policy, timeout=settings.provider_timeout_seconds)


def build_engine(settings: Settings, router: ModelRouter) -> ContextEngine:
    """The context engine over the sessions table, the bucket and the compaction queue."""
    from ctxgate.context.config import context_config, recall_embedder
    from ctxgate.context.engine import ContextEngine
    from ctxgate.context.summarize import Summarizer

    return ContextEngine(
        build_context_store(settings),
        context_config(settings),
        summarizer=Summarizer(router, settings.summarizer_model or None),
        default_budget_tokens=settings.default_budget_tokens,
        queue=build_compaction_queue(settings),
        embedder=recall_embedder(settings),
        reranker=recall_reranker(settings),
    )


def recall_reranker(settings: Settings) -> Reranker | None:
    """The optional Bedrock re-rank stage of recall (``CTXGATE_RERANK_MODEL``; off when empty)."""
    if not settings.rerank_model:
        return None
    from ctxgate.adapters.bedrock_rerank import BedrockReranker

    return BedrockReranker(settings.rerank_model)


def build_context_store(settings: Settings) -> DynamoContextStore:
    """The sessions table (turns, pins, summaries) with large bodies and recall shards in the bucket."""
    from ctxgate.adapters.dynamodb_context import DynamoContextStore
    from ctxgate.adapters.s3_blobs import S3BlobStore

    return DynamoContextStore(
        settings.table_name,
        S3BlobStore(settings.bucket_name),
        ttl_seconds=settings.session_ttl_seconds,
        offload_threshold_bytes=settings.offload_threshold_bytes,
        expiry_shards=settings.expiry_shards,
    )


def build_compaction_queue(settings: Settings) -> SqsCompactionQueue | None:
    from ctxgate.adapters.sqs_compaction import SqsCompactionQueue

    return SqsCompactionQueue(settings.compaction_queue_url) if settings.compaction_queue_url else None


def build_cache(settings: Settings) -> ResponseCache:
    """The response cache over the cache table (and the bucket for large responses), with EMF metrics."""
    from ctxgate.adapters.dynamodb_cache import DynamoCacheStore
    from ctxgate.adapters.metrics import CACHE_METRICS
    from ctxgate.adapters.s3_blobs import S3BlobStore
    from ctxgate.cache.service import ResponseCache
    from ctxgate.embeddings import get_embedder

    store = DynamoCacheStore(
        settings.cache_table_name,
        S3BlobStore(settings.bucket_name),
        offload_threshold_bytes=settings.offload_threshold_bytes,
        max_entries_per_scope=settings.cache_max_entries_per_scope,
        sessions_table=settings.table_name,  # a session's entries are written only while the session lives
    )
    kind = settings.embeddings
    return ResponseCache(
        store,
        None if kind == "off" else (lambda: get_embedder(kind)),
        threshold=settings.semantic_threshold,
        default_ttl=settings.cache_ttl_seconds,
        metrics=CACHE_METRICS,
    )


def build_quota_store(settings: Settings) -> DynamoQuotaStore:
    """The usage table: per-key quota counters, the usage ledger and the tenants' run slots."""
    from ctxgate.adapters.dynamodb_quotas import DynamoQuotaStore

    return DynamoQuotaStore(settings.usage_table_name)


def build_spend(settings: Settings) -> SpendControl:
    """Quotas and the usage ledger over the usage table, and the hard caps from settings."""
    from ctxgate.quotas.service import SpendControl

    store = build_quota_store(settings)
    return SpendControl(
        store,
        store,
        max_budget_tokens=settings.max_budget_tokens,
        default_output_tokens=settings.default_output_tokens,
    )


def build_chat(settings: Settings, router: ModelRouter | None = None) -> ChatService:
    """The chat service over the configured AWS resources; ``router`` replaces the one built from the models
    file (benchmarks and tests use scripted providers)."""
    from ctxgate.chat.service import ChatService

    router = router or build_router(settings)
    engine = build_engine(settings, router)
    response_cache = build_cache(settings)
    _cascade_deletes(engine.store, response_cache)
    return ChatService(
        engine.store,
        router,
        engine,
        cache=response_cache,
        spend=build_spend(settings),
        conflict_retries=settings.session_conflict_retries,
    )


def _cascade_deletes(store: Any, response_cache: ResponseCache) -> None:
    """A deleted or expired session takes the cache entries its turns stored with it."""
    dependents = getattr(store, "dependents", None)  # test doubles of the store may keep no dependents
    if dependents is not None and response_cache not in dependents:
        dependents.append(response_cache)


def build_sessions(chat: ChatService) -> SessionService:
    """The session service beside ``chat``: the same store, engine, router and conflict policy."""
    from ctxgate.chat.sessions import SessionService

    return SessionService(
        chat.store, chat.engine, chat.router, conflict_policy=chat.conflict_policy, clock=chat.clock, sleep=chat.sleep
    )


def build_agent(settings: Settings, chat: ChatService) -> AgentService:
    """The agent-run service over the runs table, the runs queue and the state machine."""
    from ctxgate.adapters.dynamodb_runs import DynamoRunStore
    from ctxgate.adapters.sqs_runs import SqsRunQueue
    from ctxgate.adapters.stepfunctions_runs import StepFunctionsExecutions
    from ctxgate.adapters.tool_runners import tool_runner
    from ctxgate.agent.models import RunLimits
    from ctxgate.agent.service import AgentService
    from ctxgate.quotas.runs import ConcurrentRuns

    return AgentService(
        DynamoRunStore(settings.runs_table_name, retention_seconds=settings.run_retention_seconds),
        chat,
        queue=SqsRunQueue(settings.runs_queue_url) if settings.runs_queue_url else None,
        executions=StepFunctionsExecutions(settings.state_machine_arn),
        tools=tool_runner(settings.tool_allowed_hosts, settings.tool_function_arns, stack_name=settings.stack_name),
        limits=RunLimits(settings.max_run_steps, settings.max_run_deadline_seconds),
        concurrency=ConcurrentRuns(build_quota_store(settings), settings.max_concurrent_runs),
    )


def build_keys(table: str, dynamodb: Any = None) -> KeyService:
    """API keys over the keys table ``table`` (through ``dynamodb``, a boto3 client, if given: the CLI's)."""
    from ctxgate.adapters.dynamodb_keys import DynamoKeyStore
    from ctxgate.auth.keys import KeyService

    return KeyService(DynamoKeyStore(table, dynamodb))


# -- the process-wide services -----------------------------------------------------------------------------------


@cache
def chat_service() -> ChatService:
    """The process-wide chat service (built on first use, so cold start pays only for imports)."""
    return build_chat(get_settings())


@cache
def session_service() -> SessionService:
    return build_sessions(chat_service())


@cache
def responses_service() -> ResponsesService:
    """The Responses API over the chat service (:mod:`ctxgate.responses`)."""
    from ctxgate.responses.service import ResponsesService

    return ResponsesService(chat_service())


@cache
def conversation_service() -> ConversationService:
    from ctxgate.responses.conversations import ConversationService

    chat = chat_service()
    return ConversationService(chat.store, conflict_policy=chat.conflict_policy, clock=chat.clock)


def model_router() -> ModelRouter:
    return chat_service().router


def context_engine() -> ContextEngine:
    return chat_service().engine


@cache
def context_store() -> DynamoContextStore:
    """The sessions store, and the response cache its deletes cascade to (all the sweeper needs)."""
    settings = get_settings()
    store = build_context_store(settings)
    _cascade_deletes(store, build_cache(settings))
    return store


def run_sweeper() -> AgentService:
    """What the sweeper needs of the agent service (the runs table and the executions)."""
    return agent_service()


@cache
def compaction_queue() -> SqsCompactionQueue | None:
    return build_compaction_queue(get_settings())


@cache
def agent_service() -> AgentService:
    return build_agent(get_settings(), chat_service())


@cache
def key_service() -> KeyService:
    return build_keys(get_settings().keys_table_name)


@cache
def key_authenticator() -> CachedAuthenticator:
    """The authorizer's key check, with answers cached per key for ``CTXGATE_AUTH_CACHE_TTL_SECONDS``."""
    from ctxgate.auth.authenticator import CachedAuthenticator

    return CachedAuthenticator(key_service(), ttl=get_settings().auth_cache_ttl_seconds)


@cache
def usage_ledger() -> DynamoQuotaStore:
    """The usage ledger ``GET /v1/usage`` reads."""
    return build_quota_store(get_settings())


def reset() -> None:
    """Forget the process-wide services and settings (after the environment changed)."""
    from ctxgate.aws import reset_clients

    for built in (
        chat_service,
        session_service,
        responses_service,
        conversation_service,
        context_store,
        compaction_queue,
        agent_service,
        usage_ledger,
        get_settings,
    ):
        built.cache_clear()
    key_service.cache_clear()
    key_authenticator.cache_clear()
    reset_clients()
