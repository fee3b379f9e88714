"""The response cache as the chat path uses it: look up before the model call, remember after it.

Exact: a canonical key over tenant, model, the assembled messages and every output-affecting parameter.
Semantic: when everything but the last user message is identical (same context fingerprint), the last user
message is embedded and compared with the scope's stored prompts, and a candidate is served only if
:func:`ctxgate.cache.verify.choose` verifies it. Both are keyed by tenant, so tenants never see each other's
entries. Only deterministic requests (``temperature`` 0 or a ``seed``) are cached unless the client opts in.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ctxgate.cache.keys import CacheControl, context_fingerprint, exact_key, is_deterministic
from ctxgate.cache.models import CachedResponse, CacheStatus, SemanticEntry
from ctxgate.cache.ports import CacheMetrics, CacheStore
from ctxgate.cache.verify import Candidate, Features, choose
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Completion, GenerationParams, Message, Usage

if TYPE_CHECKING:
    from ctxgate.embeddings import Embedder

TOP_CANDIDATES = 8
MAX_TTL_SECONDS = 30 * 24 * 3600  # the S3 lifecycle rule for offloaded entries matches this


@dataclass(frozen=True)
class CacheLookup:
    status: CacheStatus
    response: CachedResponse | None = None
    similarity: float | None = None
    reason: str = ""
    key: str | None = None
    scope: str | None = None
    prompt: str | None = None
    vector: Any = None
    store: bool = False
    ttl: int = 0


class ResponseCache:
    def __init__(
        self,
        store: CacheStore,
        embedder: Callable[[], Embedder] | None,
        *,
        threshold: float,
        default_ttl: int,
        metrics: CacheMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("the semantic threshold is a cosine similarity in (0, 1]")
        self.store = store
        self.embedder = embedder
        self.threshold = threshold
        self.default_ttl = default_ttl
        self.metrics = metrics
        self.clock = clock

    def effective_threshold(self, requested: float | None) -> float:
        """A client may make the threshold stricter, never looser."""
        if requested is None:
            return self.threshold
        if not 0 < requested <= 1:
            raise InvalidRequest("The cache threshold is a cosine similarity in (0, 1].", param="threshold")
        return max(self.threshold, requested)

    def lookup(
        self,
        tenant: str,
        model: str,
        messages: list[Message],
        params: GenerationParams,
        *,
        control: CacheControl,
        opt_in: bool = False,
        threshold: float | None = None,
    ) -> CacheLookup:
        threshold = self.effective_threshold(threshold)
        if not (is_deterministic(params) or opt_in):
            return self._record(CacheLookup("bypass", reason="not deterministic (temperature 0 or a seed)"))
        key = exact_key(tenant, model, messages, params)
        ttl = min(control.max_age if control.max_age is not None else self.default_ttl, MAX_TTL_SECONDS)
        scope = prompt = None
        if self.embedder is not None and messages and messages[-1].role == "user" and messages[-1].text().strip():
            prompt = messages[-1].text()
            scope = f"{self.embedder().name}:{context_fingerprint(tenant, model, messages, params)}"
        base = CacheLookup("miss", key=key, scope=scope, prompt=prompt, store=not control.no_store, ttl=ttl)
        if control.no_cache:
            return self._record(_replace(base, status="bypass", reason="Cache-Control: no-cache"))
        hit = self.store.get_exact(tenant, key)
        if hit is not None:
            return self._record(_replace(base, status="hit-exact", response=hit, store=False))
        if scope is None or prompt is None:
            return self._record(base)
        vector = self.embedder().embed([prompt])[0]  # type: ignore[misc]
        index = self.store.semantic_index(tenant, scope)
        entries, matrix = index.entries, index.vectors
        base = _replace(base, vector=vector)
        if not entries:
            return self._record(_replace(base, reason="no stored prompts in this context"))
        similarities = matrix @ vector
        top = similarities.argsort()[::-1][:TOP_CANDIDATES]
        candidates = [
            Candidate(
                entries[i].id,
                entries[i].prompt,
                float(similarities[i]),
                Features.of(entries[i].prompt),
                entries[i].answer_id,
            )
            for i in top
        ]
        verdict = choose(Features.of(prompt), candidates, threshold)
        if verdict.candidate is None:
            return self._record(_replace(base, reason=verdict.reason))
        entry = next(e for e in entries if e.id == verdict.candidate.entry_id)
        return self._record(
            _replace(
                base,
                status="hit-semantic",
                response=entry.response,
                store=False,
                similarity=verdict.candidate.similarity,
                reason=verdict.reason,
            )
        )

    def remember(self, tenant: str, lookup: CacheLookup, completion: Completion, usage: Usage, served_by: str) -> None:
        """Store a fresh response under the lookup's keys (unless the request said no-store or was not cacheable)."""
        if not lookup.store or lookup.key is None:
            return
        now = self.clock()
        response = CachedResponse(completion=completion, usage=usage, served_by=served_by, created_at=now)
        expires_at = int(now) + lookup.ttl
        self.store.put_exact(tenant, lookup.key, response, expires_at=expires_at)
        if lookup.scope is None or lookup.prompt is None or self.embedder is None:
            return
        vector = lookup.vector if lookup.vector is not None else self.embedder().embed([lookup.prompt])[0]
        answer = hashlib.sha256(completion.model_dump_json().encode()).hexdigest()[:32]
        entry = SemanticEntry(
            id=uuid.uuid4().hex, prompt=lookup.prompt, answer_id=answer, response=response, expires_at=expires_at
        )
        self.store.put_semantic(tenant, lookup.scope, entry, vector)

    def _record(self, lookup: CacheLookup) -> CacheLookup:
        if self.metrics is not None:
            saved = lookup.response.usage.total_tokens if lookup.response is not None else 0
            self.metrics.record(lookup.status, saved)
        return lookup


def _replace(lookup: CacheLookup, **changes: Any) -> CacheLookup:
    from dataclasses import replace

    return replace(lookup, **changes)
