"""Ports of the context engine, beyond the session store it extends."""

from __future__ import annotations

from typing import Protocol

from ctxgate.context.models import CompactionRequest, Epoch, RecallShard, StoredContext
from ctxgate.sessions.models import Pin, SessionMeta
from ctxgate.sessions.ports import SessionStore


class ContextStore(SessionStore, Protocol):
    def context(self, tenant: str, session_id: str) -> StoredContext | None:
        """Metadata, pins and summary epochs of a live session, in one read; None if it does not exist."""
        ...

    def add_pin(self, tenant: str, session_id: str, pin: Pin, *, now: float) -> None:
        """Store a pin, creating the session if it does not exist yet."""
        ...

    def delete_pin(self, tenant: str, session_id: str, pin_id: str) -> bool: ...

    def commit_compaction(
        self,
        tenant: str,
        session_id: str,
        *,
        expected_evicted_through: int,
        evicted_through: int,
        put: list[Epoch],
        delete: list[Epoch],
    ) -> None:
        """Atomically record a compaction: epochs to write (new or consolidated), epochs they replace, and the
        new eviction mark. Raises ``AppendConflict`` if another compaction moved the mark first."""
        ...

    def put_shard(self, meta: SessionMeta, shard: RecallShard) -> str:
        """Store the recall shard of an evicted chunk; returns the key that :meth:`get_shard` reads it by."""
        ...

    def get_shard(self, key: str) -> RecallShard: ...

    def discard_shard(self, key: str) -> None:
        """Delete a shard whose compaction was refused (the session moved on, or was deleted), so none is orphaned."""
        ...


class CompactionQueue(Protocol):
    def request(self, job: CompactionRequest) -> None:
        """Ask for the session to be compacted asynchronously."""
        ...
