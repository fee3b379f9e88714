"""Ports the session domain depends on. Adapters (DynamoDB, S3) implement them; tests may use fakes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from ctxgate.messages import Message
from ctxgate.retry import RetryableError
from ctxgate.sessions.models import (
    LeaseAttempt,
    Pin,
    Segment,
    SessionMeta,
    SessionRecord,
    StoredRecord,
    Turn,
    TurnPage,
)


class AppendConflict(RetryableError):
    """Another writer appended to (or created) the session since its version was read."""


class SessionStore(Protocol):
    """Sessions, their turns, and the lease that lets one turn at a time be served (see :class:`SessionLeases`)."""

    max_append_items: int
    """How many items (turns, pins and the session's metadata) one atomic :meth:`append` can write."""

    def get(self, tenant: str, session_id: str) -> SessionMeta | None:
        """The session's metadata, or None if it does not exist or has expired."""
        ...

    def turns(
        self, tenant: str, session_id: str, *, after: int = 0, limit: int | None = None, through: int | None = None
    ) -> TurnPage:
        """The session's own turns with ``after < seq <= through`` in order; all of them when ``limit`` is None.
        A branch's shared turns are its ancestors' (read them with :func:`ctxgate.sessions.lineage.history`)."""
        ...

    def append(
        self,
        tenant: str,
        session_id: str,
        *,
        expected_last_seq: int,
        messages: list[Message],
        tokens: list[int],
        system_prompt: str | None,
        model: str,
        now: float,
        pins: list[Pin] | None = None,
        budget: tuple[int, int] | None = None,
        lineage: list[Segment] | None = None,
        records: list[SessionRecord] | None = None,
    ) -> list[Turn]:
        """Atomically store ``messages`` as the next turns, creating the session when ``expected_last_seq`` is 0.

        ``pins`` and ``records`` are created in the same transaction; ``budget`` sets (budget_tokens,
        output_reserve); ``lineage`` (the session's own, for a branch) has the ancestors' lifetimes extended too, so
        a history never expires under a live branch.

        All turns are written or none is. Raises :class:`AppendConflict` if the session's last sequence is no
        longer ``expected_last_seq`` (or it was created meanwhile).
        """
        ...

    def delete(self, tenant: str, session_id: str) -> bool:
        """Remove every item and object of the session, its records and its branches. False if it did not exist."""
        ...

    def fork(self, tenant: str, parent: SessionMeta, through: int, branch_id: str, *, now: float) -> SessionMeta:
        """Create ``branch_id``, sharing ``parent``'s turns ``1..through`` (not copied), with a copy of its pins and
        budget and an empty context state of its own. Raises :class:`AppendConflict` if ``parent`` is gone."""
        ...

    def get_record(self, tenant: str, kind: str, record_id: str) -> StoredRecord | None: ...

    def put_record(self, tenant: str, session_id: str, record: SessionRecord, *, create: bool) -> bool:
        """Store ``record`` with a live session: ``create`` fails (False) if it exists, else if it does not."""
        ...

    def delete_record(self, tenant: str, kind: str, record_id: str) -> bool: ...

    def replace_turn(self, tenant: str, session_id: str, seq: int, message: Message | None) -> bool:
        """Rewrite one of the session's own turns (None: mark it deleted, out of every later context)."""
        ...

    def try_acquire(self, tenant: str, session_id: str, holder: str, *, now: float, until: float) -> LeaseAttempt: ...

    def release(self, tenant: str, session_id: str, holder: str, *, typical_hold: float | None) -> None: ...


class SessionLeases(Protocol):
    """One turn at a time per session: a lease with a holder and an expiry, so a holder that dies frees it."""

    def try_acquire(self, tenant: str, session_id: str, holder: str, *, now: float, until: float) -> LeaseAttempt:
        """Take the session's lease for ``holder`` until ``until`` if it is free, expired, or already ``holder``'s.
        Conditional: two holders can never both succeed. Either way the attempt carries the session's
        ``typical_hold``; when the lease is busy, also since when its holder has held it."""
        ...

    def release(self, tenant: str, session_id: str, holder: str, *, typical_hold: float | None) -> None:
        """Free the lease if ``holder`` still holds it (an expired lease someone else took is left alone), and
        record the session's ``typical_hold`` (seconds) for the requests that wait for it next; None: none is known,
        and nothing of the lease is left behind."""
        ...


class BlobStore(Protocol):
    def put(self, key: str, data: bytes, *, tagging: str | None = None) -> None:
        """Store ``data``; ``tagging`` (``k=v&...``) lets lifecycle rules find the object."""
        ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, last-modified epoch seconds) of every object under ``prefix``."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        ...


class SessionDependent(Protocol):
    """Something that keeps data on a session's behalf outside the session's own items (the response cache)."""

    def forget_session(self, tenant: str, session_id: str) -> int:
        """Delete everything kept for the session (any incarnation of its id); returns how many entries went.
        Idempotent."""
        ...
