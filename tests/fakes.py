"""In-memory implementations of the domain's ports, for unit tests without AWS."""

from __future__ import annotations

import threading

from ctxgate.chat.service import ChatService
from ctxgate.context.engine import ContextEngine
from ctxgate.context.models import CompactionRequest, ContextConfig, Epoch, RecallShard, StoredContext
from ctxgate.context.summarize import Summarizer
from ctxgate.providers.registry import ECHO_ONLY, ModelRouter
from ctxgate.retry import RetryPolicy
from ctxgate.sessions.models import LeaseAttempt, Pin, SessionMeta, Turn, TurnPage
from ctxgate.sessions.ports import AppendConflict


class MemoryStore:
    """A ContextStore with the same versioning rules as the DynamoDB adapter."""

    max_append_items = 100

    def __init__(self) -> None:
        self.meta: dict[tuple[str, str], SessionMeta] = {}
        self.rows: dict[tuple[str, str], list[Turn]] = {}
        self.pin_rows: dict[tuple[str, str], list[Pin]] = {}
        self.epoch_rows: dict[tuple[str, str], list[Epoch]] = {}
        self.shards: dict[str, RecallShard] = {}
        self.conflicts_to_inject = 0
        self.leases: dict[tuple[str, str], tuple[str, float, float]] = {}  # holder, until, held since
        self.typical_holds: dict[tuple[str, str], float] = {}
        self.acquisitions = 0
        self.lock = threading.Lock()

    def get(self, tenant, session_id):
        return self.meta.get((tenant, session_id))

    def try_acquire(self, tenant, session_id, holder, *, now, until):
        with self.lock:
            typical = self.typical_holds.get((tenant, session_id))
            current = self.leases.get((tenant, session_id))
            if current is not None and current[0] != holder and current[1] >= now:
                return LeaseAttempt(acquired=False, held_since=current[2], typical_hold=typical)
            self.leases[(tenant, session_id)] = (holder, until, now)
            self.acquisitions += 1
            return LeaseAttempt(acquired=True, typical_hold=typical)

    def release(self, tenant, session_id, holder, *, typical_hold):
        with self.lock:
            if self.leases.get((tenant, session_id), (None,))[0] == holder:
                del self.leases[(tenant, session_id)]
                if typical_hold is None:
                    self.typical_holds.pop((tenant, session_id), None)
                else:
                    self.typical_holds[(tenant, session_id)] = typical_hold

    def turns(self, tenant, session_id, *, after=0, limit=None, through=None):
        rows = [t for t in self.rows.get((tenant, session_id), []) if after < t.seq <= (through or 10**10)]
        return TurnPage(turns=rows if limit is None else rows[:limit], next_after=None)

    def append(
        self,
        tenant,
        session_id,
        *,
        expected_last_seq,
        messages,
        tokens,
        system_prompt,
        model,
        now,
        pins=None,
        budget=None,
        lineage=None,
        records=None,
    ):
        with self.lock:
            if self.conflicts_to_inject:
                self.conflicts_to_inject -= 1
                raise AppendConflict("injected")
            key = (tenant, session_id)
            current = self.meta.get(key)
            if (current.last_seq if current else 0) != expected_last_seq:
                raise AppendConflict("moved")
            turns = [
                Turn(seq=expected_last_seq + i, message=m, created_at=now, tokens=t)
                for i, (m, t) in enumerate(zip(messages, tokens, strict=True), start=1)
            ]
            self.rows.setdefault(key, []).extend(turns)
            self.pin_rows.setdefault(key, []).extend(pins or [])
            update = {"last_seq": turns[-1].seq, "updated_at": now, "model": model, "expires_at": int(now) + 3600}
            if budget is not None:
                update.update(budget_tokens=budget[0], output_reserve=budget[1])
            if current is None:
                current = SessionMeta(
                    tenant=tenant,
                    session_id=session_id,
                    system_prompt=system_prompt,
                    created_at=now,
                    updated_at=now,
                    expires_at=int(now) + 3600,
                )
            self.meta[key] = current.model_copy(update=update)
            return turns

    def delete(self, tenant, session_id):
        return self.meta.pop((tenant, session_id), None) is not None

    def context(self, tenant, session_id):
        key = (tenant, session_id)
        if key not in self.meta:
            return None
        return StoredContext(
            meta=self.meta[key], pins=list(self.pin_rows.get(key, [])), epochs=list(self.epoch_rows.get(key, []))
        )

    def add_pin(self, tenant, session_id, pin, *, now):
        key = (tenant, session_id)
        if key not in self.meta:
            self.meta[key] = SessionMeta(
                tenant=tenant, session_id=session_id, created_at=now, updated_at=now, expires_at=int(now) + 3600
            )
        self.pin_rows.setdefault(key, []).append(pin)

    def delete_pin(self, tenant, session_id, pin_id):
        pins = self.pin_rows.get((tenant, session_id), [])
        kept = [p for p in pins if p.id != pin_id]
        self.pin_rows[(tenant, session_id)] = kept
        return len(kept) != len(pins)

    def commit_compaction(self, tenant, session_id, *, expected_evicted_through, evicted_through, put, delete):
        with self.lock:
            key = (tenant, session_id)
            meta = self.meta[key]
            if meta.evicted_through != expected_evicted_through:
                raise AppendConflict("compacted meanwhile")
            gone = {e.first_seq for e in delete}
            kept = [e for e in self.epoch_rows.get(key, []) if e.first_seq not in gone]
            self.epoch_rows[key] = sorted([*kept, *put], key=lambda e: e.first_seq)
            self.meta[key] = meta.model_copy(update={"evicted_through": evicted_through})

    def put_shard(self, meta, shard):
        key = f"{meta.tenant}/{meta.session_id}/{meta.incarnation}/{shard.first_seq}-{shard.last_seq}"
        self.shards[key] = shard
        return key

    def get_shard(self, key):
        return self.shards[key]

    def discard_shard(self, key):
        self.shards.pop(key, None)


class ListQueue:
    def __init__(self) -> None:
        self.jobs: list[CompactionRequest] = []

    def request(self, job):
        self.jobs.append(job)


def chat_service(
    store,
    router: ModelRouter | None = None,
    *,
    budget: int = 8192,
    conflict_retries: int = 6,
    conflict_deadline: float = 20.0,
    queue=None,
    config: ContextConfig | None = None,
    sleep=lambda seconds: None,
) -> ChatService:
    router = router or ModelRouter(ECHO_ONLY, RetryPolicy())
    engine = ContextEngine(
        store, config or ContextConfig(), summarizer=Summarizer(router), default_budget_tokens=budget, queue=queue
    )
    return ChatService(
        store,
        router,
        engine,
        conflict_retries=conflict_retries,
        conflict_deadline=conflict_deadline,
        sleep=lambda s: None,
    )


class MemoryKeyStore:
    """A KeyStore in a dict, with the DynamoDB adapter's rules (ids are unique; revoking is idempotent)."""

    def __init__(self) -> None:
        from ctxgate.auth.keys import ApiKey

        self.keys: dict[str, ApiKey] = {}

    def create(self, key):  # type: ignore[no-untyped-def]
        from ctxgate.auth.ports import KeyExists

        if key.id in self.keys:
            raise KeyExists(key.id)
        self.keys[key.id] = key

    def get(self, key_id):  # type: ignore[no-untyped-def]
        return self.keys.get(key_id)

    def list(self, tenant=None):  # type: ignore[no-untyped-def]
        return sorted((k for k in self.keys.values() if tenant in (None, k.tenant)), key=lambda k: (k.created_at, k.id))

    def revoke(self, key_id):  # type: ignore[no-untyped-def]
        import dataclasses

        if key_id not in self.keys:
            return None
        self.keys[key_id] = dataclasses.replace(self.keys[key_id], revoked=True)
        return self.keys[key_id]
