"""Ports of the context engine, beyond the session store it extends."""

from __future__ import annotations

from typing import Protocol

from ctxgate.context.models import Epoch, Pin, RecallShard
from ctxgate.sessions.models import SessionMeta
from ctxgate.sessions.ports import SessionStore


class ContextStore(SessionStore, Protocol):
    def context(self, tenant: str, session_id: str) -> tuple[SessionMeta, list[Pin], list[Epoch]] | None:
        """Metadata, pins (oldest first) and summary epochs (in turn order) of a live session, in one read."""
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

    def put_shard(self, key: str, shard: RecallShard) -> None: ...

    def get_shard(self, key: str) -> RecallShard: ...
