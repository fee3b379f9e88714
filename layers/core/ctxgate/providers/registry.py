"""Model configuration (a YAML file) and the router that serves a model with retries and fallbacks."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ctxgate.errors import ProviderFailure, UnknownModel, UpstreamRejected
from ctxgate.messages import Completion, GenerationParams, Message, ProviderRequest, Usage
from ctxgate.providers.base import ApiKey, Provider, ProviderRejected, ProviderUnusable, TransientProviderError
from ctxgate.providers.secrets import SecretRef, SecretsReader
from ctxgate.providers.streaming import StreamEvent
from ctxgate.retry import RetryableError, RetryPolicy, call_with_retry

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ModelPrice(BaseModel):
    """USD per million tokens. ``cached_input_per_mtok`` applies to the input tokens the provider read from its
    prompt cache (they are part of the input tokens); unset, it is the input price."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    cached_input_per_mtok: float | None = Field(default=None, ge=0)

    def cost_of(self, usage: Usage) -> Decimal:
        """The cost in USD of one call's usage (exact decimal arithmetic: the ledger sums many small costs)."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_price = self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok
        total = (
            (usage.prompt_tokens - cached) * _decimal(self.input_per_mtok)
            + cached * _decimal(cached_price)
            + usage.completion_tokens * _decimal(self.output_per_mtok)
        )
        return total / 1_000_000


def _decimal(value: float) -> Decimal:
    return Decimal(str(value))


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    provider: Literal["bedrock", "openai", "anthropic", "echo"]
    upstream_model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    """The NAME of an environment variable holding the key: for local runs (a deployed stack sets no key in its
    environment)."""
    api_key_secret: str | None = None
    """Where a deployed stack reads the key: a Secrets Manager secret name or ARN, or ``ssm:<parameter>`` (see
    :mod:`ctxgate.providers.secrets`)."""
    fallbacks: list[str] = Field(default_factory=list)
    price: ModelPrice | None = None
    """None: the model's usage is ledgered at no cost."""
    max_output_tokens: int | None = Field(default=None, ge=1)
    """Hard cap on a request's ``max_tokens``; a request asking for more gets a 400 before any call."""

    def cost_of(self, usage: Usage) -> Decimal:
        return self.price.cost_of(usage) if self.price is not None else Decimal(0)

    @model_validator(mode="after")
    def _one_key_source(self) -> ModelConfig:
        if self.api_key_env and self.api_key_secret:
            raise ValueError(f"model {self.name!r}: give api_key_env (local) or api_key_secret (deployed), not both")
        if self.api_key_secret is not None:
            SecretRef.parse(self.api_key_secret)
        return self

    def min_cacheable_tokens(self) -> int:
        """The smallest prompt prefix the provider will cache (Claude Haiku models need 2048, others 1024)."""
        return 2048 if "haiku" in self.upstream_model.lower() else 1024


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_names(self) -> ModelsFile:
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate model names in {names}")
        for model in self.models:
            unknown = [f for f in model.fallbacks if f not in names or f == model.name]
            if unknown:
                raise ValueError(f"model {model.name!r} has unknown or self fallbacks {unknown}")
        return self


ECHO_ONLY = ModelsFile(
    models=[
        ModelConfig(
            name="echo",
            provider="echo",
            upstream_model="echo",
            price=ModelPrice(input_per_mtok=0, output_per_mtok=0),
        )
    ]
)


def load_models(path: Path | None) -> ModelsFile:
    """Read and validate a models YAML file; without one, the only model is ``echo``."""
    if path is None:
        return ECHO_ONLY
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
        return ModelsFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise ValueError(f"invalid models file {path}: {error}") from error


def api_key_of(config: ModelConfig, secrets: SecretsReader | None = None) -> ApiKey:
    """The model's key: read from its environment variable now, or a callable that reads its secret on each call
    (cached for the secrets TTL, so a rotated key is picked up without a cold start)."""
    if config.api_key_secret:
        from ctxgate.settings import get_settings

        reader = secrets or SecretsReader(get_settings().provider_key_ttl_seconds)
        reference = config.api_key_secret
        return lambda: reader.read(reference)
    return os.environ.get(config.api_key_env) if config.api_key_env else None


def build_provider(config: ModelConfig, timeout: float, *, secrets: SecretsReader | None = None) -> Provider:
    """The adapter of ``config.provider``; ``secrets`` reads ``api_key_secret`` keys (default: a reader with the
    configured TTL)."""
    api_key = api_key_of(config, secrets)
    if config.provider == "echo":
        from ctxgate.providers.echo import EchoProvider
        from ctxgate.settings import get_settings

        return EchoProvider(chunk_delay=get_settings().echo_chunk_delay_seconds)
    if config.provider == "openai":
        from ctxgate.providers.openai import OpenAIProvider

        return OpenAIProvider(base_url=config.base_url, api_key=api_key, timeout=timeout)
    if config.provider == "anthropic":
        from ctxgate.providers.anthropic import AnthropicProvider

        return AnthropicProvider(base_url=config.base_url, api_key=api_key, timeout=timeout)
    from ctxgate.providers.bedrock import BedrockProvider

    return BedrockProvider(timeout=timeout)


class ModelRouter:
    """Serves a configured model: retries each candidate, then walks its fallbacks in order.

    Providers are built lazily and reused across requests (they hold HTTP connection pools).
    """

    def __init__(
        self,
        models: ModelsFile,
        policy: RetryPolicy,
        *,
        timeout: float = 60.0,
        provider_factory: Callable[[ModelConfig, float], Provider] = build_provider,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.models = {m.name: m for m in models.models}
        self.policy = policy
        self.timeout = timeout
        self._factory = provider_factory
        self._providers: dict[str, Provider] = {}
        self._lock = threading.Lock()
        self._sleep = sleep

    def names(self) -> list[str]:
        return list(self.models)

    def resolve(self, name: str) -> ModelConfig:
        try:
            return self.models[name]
        except KeyError:
            raise UnknownModel(f"The model `{name}` does not exist. Configured: {', '.join(self.models)}") from None

    def provider(self, config: ModelConfig) -> Provider:
        with self._lock:
            if config.name not in self._providers:
                self._providers[config.name] = self._factory(config, self.timeout)
            return self._providers[config.name]

    def complete(
        self, model: str, messages: list[Message], params: GenerationParams, *, cache_points: list[int] | None = None
    ) -> tuple[Completion, ModelConfig]:
        """Returns the completion and the model configuration that actually served it.

        Raises :class:`UpstreamRejected` (4xx) when a provider refuses the request itself, and
        :class:`ProviderFailure` (502/503) when every candidate failed; neither carries upstream text (it is
        logged).
        """
        return self._serve(model, messages, params, cache_points, lambda provider, request: provider.complete(request))

    def stream(
        self, model: str, messages: list[Message], params: GenerationParams, *, cache_points: list[int] | None = None
    ) -> tuple[Iterator[StreamEvent], ModelConfig]:
        """Open a stream: the events (the first one already received) and the configuration serving them.

        Retries and fallbacks apply exactly as in :meth:`complete`, but only until a candidate produced its first
        event: after that the client has bytes, so a failure is raised by the returned iterator (a provider error
        of :mod:`ctxgate.providers.base`, not retried). Raises like :meth:`complete` before the first event."""
        return self._serve(model, messages, params, cache_points, _opened)

    def _serve(
        self,
        model: str,
        messages: list[Message],
        params: GenerationParams,
        cache_points: list[int] | None,
        call: Callable[[Provider, ProviderRequest], T],
    ) -> tuple[T, ModelConfig]:
        primary = self.resolve(model)
        candidates = [primary, *(self.models[f] for f in primary.fallbacks)]
        failures: list[str] = []
        transient_only = True
        for config in candidates:
            provider = self.provider(config)
            request = ProviderRequest(
                upstream_model=config.upstream_model, messages=messages, params=params, cache_points=cache_points or []
            )
            try:
                retry_kwargs = {"sleep": self._sleep} if self._sleep is not None else {}
                result = call_with_retry(lambda p=provider, r=request: call(p, r), self.policy, **retry_kwargs)
                return result, config
            except ProviderRejected as error:
                # The upstream's text stays in the logs: it can name internal hosts and echo the prompt.
                logger.warning("model rejected the request", extra={"model": config.name, "error": str(error)})
                raise UpstreamRejected.of(config.name, error.status, error.reason) from error
            except RetryableError as error:
                failures.append(f"{config.name}: {error}")
            except ProviderUnusable as error:
                transient_only = False
                failures.append(f"{config.name}: {error}")
            logger.warning("model candidate failed", extra={"model": config.name, "error": failures[-1]})
        logger.error("every candidate failed", extra={"model": model, "failures": failures})
        raise ProviderFailure(
            f"The model `{model}` could not be reached: every configured provider failed"
            + (" (temporarily; retry later)." if transient_only else "."),
            unavailable=transient_only,
        )


def _opened(provider: Provider, request: ProviderRequest) -> Iterator[StreamEvent]:
    """The provider's stream with its first event received (so a failure to start is retried like a failed
    ``complete``), chained back in front of the rest."""
    events = iter(provider.stream(request))
    try:
        first = next(events)
    except StopIteration:
        raise TransientProviderError("the upstream stream ended before its first event") from None
    return _resumed(first, events)


def _resumed(first: StreamEvent, rest: Iterator[StreamEvent]) -> Iterator[StreamEvent]:
    # A generator (not itertools.chain) so that closing it closes the provider's stream and its connection.
    yield first
    yield from rest


__all__ = ["ModelConfig", "ModelPrice", "ModelRouter", "ModelsFile", "TransientProviderError", "load_models"]
