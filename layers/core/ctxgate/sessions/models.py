"""Session records as the domain sees them, independent of how an adapter stores them."""

from __future__ import annotations

import re

from pydantic import BaseModel

from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def validate_session_id(session_id: str) -> str:
    if not SESSION_ID_PATTERN.fullmatch(session_id or ""):
        raise InvalidRequest(
            "Session ids are 1 to 128 characters from [A-Za-z0-9._:-].", code="invalid_session_id", param="X-Session-Id"
        )
    return session_id


class Segment(BaseModel):
    """Turns ``..through`` of a branch's history are ``session_id``'s (those after the previous segment's)."""

    session_id: str
    through: int


class SessionRecord(BaseModel):
    """A small document stored with a session and deleted with it (a response, a conversation's metadata), found
    by its own id within the tenant."""

    kind: str
    id: str
    body: str
    """JSON."""


class StoredRecord(BaseModel):
    session_id: str
    body: str


class SessionMeta(BaseModel):
    tenant: str
    session_id: str
    system_prompt: str | None = None
    model: str | None = None
    created_at: float
    updated_at: float
    expires_at: int
    last_seq: int = 0
    """Sequence number of the newest turn; 0 for a session with no turns. It versions every append."""
    evicted_through: int = 0
    """Turns up to this seq are evicted from the verbatim history (summarised, still stored). Versions compactions."""
    budget_tokens: int | None = None
    output_reserve: int | None = None
    incarnation: str = ""
    """Fresh for each creation of this session id: what is keyed by it never outlives a deletion."""
    lineage: list[Segment] = []
    """For a branch: the ancestors whose turns it shares, oldest first (see :mod:`ctxgate.sessions.lineage`)."""


class Pin(BaseModel):
    """A constraint the client pinned to the session: it is in every context and never evicted."""

    id: str
    content: str
    tokens: int
    created_at: float


class Turn(BaseModel):
    seq: int
    message: Message
    created_at: float
    tokens: int
    deleted: bool = False
    """Removed by its owner (a deleted conversation item): it keeps its seq, but no context includes it."""


class TurnPage(BaseModel):
    turns: list[Turn]
    next_after: int | None
    """Pass as ``after`` to read the next page; None when this page is the last."""


class SessionPage(BaseModel):
    """A session's metadata and one page of its turns."""

    meta: SessionMeta
    turns: TurnPage


class LeaseAttempt(BaseModel):
    """The outcome of one attempt at a session's lease."""

    acquired: bool
    held_since: float | None = None
    """When the current holder took the lease (epoch seconds), if the attempt found it busy."""
    typical_hold: float | None = None
    """How long the session's turns have recently held the lease (seconds), as its last holder recorded it."""

    def expected_release(self) -> float | None:
        """When the current holder will likely be done (epoch seconds); None if nothing is known."""
        if self.held_since is None or self.typical_hold is None:
            return None
        return self.held_since + self.typical_hold
