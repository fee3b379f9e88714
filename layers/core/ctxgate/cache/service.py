"""The response cache as the chat path uses it: look up before the model call, remember after it.

Exact: a canonical key over tenant, model, the assembled messages and every output-affecting parameter.
Semantic: when everything but the last user message is identical (same context fingerprint), the last user
message is embedded and compared with the scope's stored prompts, and a candidate is served only if
:func:`ctxgate.cache.verify.choose` verifies it. Both are keyed by tenant, so tenants never see each other's
entries. Only deterministic requests (``temperature`` 0 or a ``seed``) are cached unless the client opts in, and
only callers allowed it (a key flag) may opt in or keep an entry longer than the default TTL.

Every entry records the model that produced it: an answer from a fallback model is never stored under the
requested model's keys, and an entry whose producer is not the requested model is never served.
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
    model: str | None = None
    """The requested model: only its own answers are stored and served under this lookup's keys."""
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
        allow_extended: bool = False,
    ) -> CacheLookup:
        """Look the request up. ``opt_in`` (cache a non-deterministic request) and a ``max-age`` above the default
        TTL are honoured only with ``allow_extended`` (the caller's key allows them); otherwise the opt-in is
        ignored and the TTL capped at the default."""
        threshold = self.effective_threshold(threshold)
        if not is_deterministic(params):
            if not opt_in:
                return self._record(CacheLookup("bypass", reason="not deterministic (temperature 0 or a seed)"))
            if not allow_extended:
                return self._record(CacheLookup("bypass", reason="this key may not opt in to caching"))
        key = exact_key(tenant, model, messages, params)
        max_age = self.default_ttl if control.max_age is None else control.max_age
        if not allow_extended:
            max_age = min(max_age, self.default_ttl)
        ttl = min(max_age, MAX_TTL_SECONDS)
        scope = prompt = None
        if self.embedder is not None and messages and messages[-1].role == "user" and messages[-1].text().strip():
            prompt = messages[-1].text()
            scope = f"{self.embedder().name}:{context_fingerprint(tenant, model, messages, params)}"
        base = CacheLookup(
            "miss", key=key, model=model, scope=scope, prompt=prompt, store=not control.no_store, ttl=ttl
        )
        if control.no_cache:
            return self._record(_replace(base, status="bypass", reason="Cache-Control: no-cache"))
        hit = self.store.get_exact(tenant, key)
        if hit is not None and hit.served_by == model:
            return self._record(_replace(base, status="hit-exact", response=hit, store=False))
        if scope is None or prompt is None:
            return self._record(base)
        vector = self.embedder().embed([prompt])[0]  # type: ignore[misc]
        index = self.store.semantic_index(tenant, scope)
        entries, matrix = index.entries, index.vectors
        base = _replace(base, vector=vector)
        if entries and any(e.served_by != model for e in entries):  # never stored so; refuse them regardless
            own = [i for i, e in enumerate(entries) if e.served_by == model]
            entries, matrix = [entries[i] for i in own], matrix[own]
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
        response = self.store.semantic_response(tenant, scope, entry)
        if response is None or response.served_by != model:
            return self._record(_replace(base, reason="the chosen entry was evicted"))
        return self._record(
            _replace(
                base,
                status="hit-semantic",
                response=response,
                store=False,
                similarity=verdict.candidate.similarity,
                reason=verdict.reason,
            )
        )

    def remember(
        self,
        tenant: str,
        lookup: CacheLookup,
        completion: Completion,
        usage: Usage,
        served_by: str,
        *,
        session_id: str | None = None,
    ) -> None:
        """Store a fresh response under the lookup's keys, unless the request said no-store or was not cacheable, or
        ``served_by`` (a fallback) is not the model the lookup was for. ``session_id``: the entries belong to that
        session (they hold its text), go when it is deleted, and are not stored at all if it is already gone."""
        if not lookup.store or lookup.key is None or served_by != lookup.model:
            return
        now = self.clock()
        response = CachedResponse(completion=completion, usage=usage, served_by=served_by, created_at=now)
        expires_at = int(now) + lookup.ttl
        if not self.store.put_exact(tenant, lookup.key, response, expires_at=expires_at, session_id=session_id):
            return  # the session was deleted while this turn ran: its text must not outlive it here
        if lookup.scope is None or lookup.prompt is None or self.embedder is None:
            return
        vector = lookup.vector if lookup.vector is not None else self.embedder().embed([lookup.prompt])[0]
        answer = hashlib.sha256(completion.model_dump_json().encode()).hexdigest()[:32]
        entry = SemanticEntry(
            id=uuid.uuid4().hex,
            prompt=lookup.prompt,
            answer_id=answer,
            served_by=served_by,
            created_at=now,
            expires_at=expires_at,
        )
        self.store.put_semantic(tenant, lookup.scope, entry, response, vector, session_id=session_id)

    def forget_session(self, tenant: str, session_id: str) -> int:
        """Delete the entries the session's turns stored (called when the session is deleted or expires)."""
        return self.store.forget_session(tenant, session_id)

    def _record(self, lookup: CacheLookup) -> CacheLookup:
        if self.metrics is not None:
            saved = lookup.response.usage.total_tokens if lookup.response is not None else 0
            self.metrics.record(lookup.status, saved)
        return lookup


def _replace(lookup: CacheLookup, **changes: Any) -> CacheLookup:
    from dataclasses import replace

    return replace(lookup, **changes)
