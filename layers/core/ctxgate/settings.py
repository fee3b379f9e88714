"""The one settings module: every environment variable ctxgate reads is parsed here, once.

``template.yaml`` sets these in ``Globals``; ``ctxgate local`` sets the same names from the template.
Kept free of pydantic so that importing it costs nothing at cold start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BUNDLED_MODELS_FILE = Path(__file__).with_name("models.yaml")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def _list(name: str) -> list[str]:
    """A comma-delimited list (as CloudFormation joins a ``CommaDelimitedList``), without empty items."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return raw in ("1", "true", "yes", "on") if raw else default


@dataclass(frozen=True)
class Settings:
    table_name: str
    bucket_name: str
    models_file: Path | None
    session_ttl_seconds: int
    max_request_bytes: int
    offload_threshold_bytes: int
    provider_timeout_seconds: float
    retry_max_attempts: int
    retry_deadline_seconds: float
    session_conflict_retries: int
    default_tenant: str
    default_budget_tokens: int
    compaction_queue_url: str
    summarizer_model: str
    recall_share: float
    recall_min_relevance: float
    recall_min_relevance_question: float
    recall_embeddings: str
    sticky_recall: bool
    rerank_model: str
    cache_table_name: str
    semantic_threshold: float
    cache_ttl_seconds: int
    embeddings: str
    runs_table_name: str
    runs_queue_url: str
    state_machine_arn: str
    tool_allowed_hosts: list[str]
    jwt_tenant_claim: str
    sweep_interval_seconds: int
    run_retention_seconds: int
    idempotency_table_name: str
    expiry_shards: int
    orphan_grace_seconds: int
    tool_function_arns: list[str]
    """The Lambda functions runs may use as tools (``ToolFunctionArns``); empty means none."""
    stack_name: str
    """ctxgate's own functions are named ``<stack name>-...`` and can never be tools."""
    max_run_steps: int
    max_run_deadline_seconds: int
    keys_table_name: str
    auth_cache_ttl_seconds: int
    provider_key_ttl_seconds: int
    cache_max_entries_per_scope: int
    """Bound on a semantic cache scope's entries; beyond it the least recently used are evicted."""
    """How long a provider key read from Secrets Manager or SSM is cached in the process."""
    # Spend control (quotas, usage ledger, hard caps).
    usage_table_name: str
    max_budget_tokens: int
    default_output_tokens: int
    max_concurrent_runs: int
    echo_chunk_delay_seconds: float
    auth_mode: str
    """How the streaming function authenticates in-function (``key`` or ``jwt``; :mod:`ctxgate.api.request_auth`)."""
    web_port: int
    """The port the streaming function's web server listens on (``PORT``, the Lambda Web Adapter's convention)."""
    """Pause before each chunk of the ``echo`` model's stream (tests and ``ctxgate bench``); 0 in production."""

    @classmethod
    def from_env(cls) -> Settings:
        models = os.environ.get("CTXGATE_MODELS_FILE", "").strip()
        return cls(
            table_name=os.environ.get("CTXGATE_TABLE_NAME", "ctxgate-sessions"),
            bucket_name=os.environ.get("CTXGATE_BUCKET_NAME", "ctxgate-blobs"),
            models_file=Path(models) if models else (BUNDLED_MODELS_FILE if BUNDLED_MODELS_FILE.exists() else None),
            session_ttl_seconds=_int("CTXGATE_SESSION_TTL_SECONDS", 30 * 24 * 3600),
            max_request_bytes=_int("CTXGATE_MAX_REQUEST_BYTES", 2 * 1024 * 1024),
            offload_threshold_bytes=_int("CTXGATE_OFFLOAD_THRESHOLD_BYTES", 64 * 1024),
            provider_timeout_seconds=_float("CTXGATE_PROVIDER_TIMEOUT_SECONDS", 60.0),
            retry_max_attempts=_int("CTXGATE_RETRY_MAX_ATTEMPTS", 3),
            retry_deadline_seconds=_float("CTXGATE_RETRY_DEADLINE_SECONDS", 25.0),
            session_conflict_retries=_int("CTXGATE_SESSION_CONFLICT_RETRIES", 6),
            default_tenant=os.environ.get("CTXGATE_DEFAULT_TENANT", "default"),
            default_budget_tokens=_int("CTXGATE_DEFAULT_BUDGET_TOKENS", 8192),
            compaction_queue_url=os.environ.get("CTXGATE_COMPACTION_QUEUE_URL", "").strip(),
            summarizer_model=os.environ.get("CTXGATE_SUMMARIZER_MODEL", "").strip(),
            recall_share=_float("CTXGATE_RECALL_SHARE", 0.35),
            recall_min_relevance=_float("CTXGATE_RECALL_MIN_RELEVANCE", 2.0),
            recall_min_relevance_question=_float("CTXGATE_RECALL_MIN_RELEVANCE_QUESTION", 0.9),
            recall_embeddings=os.environ.get("CTXGATE_RECALL_EMBEDDINGS", "local").strip() or "local",
            sticky_recall=_bool("CTXGATE_STICKY_RECALL", False),
            rerank_model=os.environ.get("CTXGATE_RERANK_MODEL", "").strip(),
            cache_table_name=os.environ.get("CTXGATE_CACHE_TABLE_NAME", "ctxgate-cache"),
            semantic_threshold=_float("CTXGATE_SEMANTIC_THRESHOLD", 0.75),
            cache_ttl_seconds=_int("CTXGATE_CACHE_TTL_SECONDS", 86400),
            embeddings=os.environ.get("CTXGATE_EMBEDDINGS", "local").strip() or "local",
            runs_table_name=os.environ.get("CTXGATE_RUNS_TABLE_NAME", "ctxgate-runs"),
            runs_queue_url=os.environ.get("CTXGATE_RUNS_QUEUE_URL", "").strip(),
            state_machine_arn=os.environ.get("CTXGATE_STATE_MACHINE_ARN", "").strip(),
            expiry_shards=_int("CTXGATE_EXPIRY_SHARDS", 16),
            idempotency_table_name=os.environ.get("CTXGATE_IDEMPOTENCY_TABLE_NAME", "ctxgate-idempotency"),
            run_retention_seconds=_int("CTXGATE_RUN_RETENTION_SECONDS", 30 * 24 * 3600),
            sweep_interval_seconds=_int("CTXGATE_SWEEP_INTERVAL_SECONDS", 900),
            orphan_grace_seconds=_int("CTXGATE_ORPHAN_GRACE_SECONDS", 3600),
            jwt_tenant_claim=os.environ.get("CTXGATE_JWT_TENANT_CLAIM", "").strip() or "tenant",
            tool_allowed_hosts=_list("CTXGATE_TOOL_ALLOWED_HOSTS"),
            tool_function_arns=_list("CTXGATE_TOOL_FUNCTION_ARNS"),
            stack_name=os.environ.get("CTXGATE_STACK_NAME", "ctxgate").strip(),
            max_run_steps=_int("CTXGATE_MAX_RUN_STEPS", 25),
            max_run_deadline_seconds=_int("CTXGATE_MAX_RUN_DEADLINE_SECONDS", 900),
            keys_table_name=os.environ.get("CTXGATE_KEYS_TABLE_NAME", "ctxgate-keys"),
            auth_cache_ttl_seconds=_int("CTXGATE_AUTH_CACHE_TTL_SECONDS", 60),
            provider_key_ttl_seconds=_int("CTXGATE_PROVIDER_KEY_TTL_SECONDS", 300),
            cache_max_entries_per_scope=_int("CTXGATE_CACHE_MAX_ENTRIES_PER_SCOPE", 500),
            usage_table_name=os.environ.get("CTXGATE_USAGE_TABLE_NAME", "ctxgate-usage"),
            max_budget_tokens=_int("CTXGATE_MAX_BUDGET_TOKENS", 262_144),
            default_output_tokens=_int("CTXGATE_DEFAULT_OUTPUT_TOKENS", 4096),
            max_concurrent_runs=_int("CTXGATE_MAX_CONCURRENT_RUNS", 10),
            echo_chunk_delay_seconds=_float("CTXGATE_ECHO_CHUNK_DELAY_MS", 0.0) / 1000.0,
            auth_mode=os.environ.get("CTXGATE_AUTH_MODE", "").strip().lower() or "key",
            web_port=_int("PORT", 8080),
        )


@cache
def get_settings() -> Settings:
    """The process-wide settings; tests that change the environment call ``get_settings.cache_clear()``."""
    return Settings.from_env()
