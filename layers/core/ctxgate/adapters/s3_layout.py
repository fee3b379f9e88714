"""The S3 key layout, in one place. Every object is under its tenant's prefix::

    tenants/{tenant}/sessions/{session}/turns/{seq:010d}-{nonce}.json   an offloaded turn body
    tenants/{tenant}/sessions/{session}/recall/{incarnation}/{first:010d}-{last:010d}.json   a recall shard
    tenants/{tenant}/cache/{name}.json   an offloaded cached response

Deleting a session deletes its prefix.
"""

from __future__ import annotations

import uuid


def session_prefix(tenant: str, session_id: str) -> str:
    """The prefix holding every object of one session."""
    return f"tenants/{tenant}/sessions/{session_id}/"


def turn_body_key(tenant: str, session_id: str, seq: int) -> str:
    """A fresh key for an offloaded turn body: unique per attempt, so a losing writer never overwrites a winner."""
    return f"{session_prefix(tenant, session_id)}turns/{seq:010d}-{uuid.uuid4().hex}.json"


def shard_key(tenant: str, session_id: str, incarnation: str, first_seq: int, last_seq: int) -> str:
    """A recall shard's key: immutable, and unique to one incarnation of the session id (so a process that cached
    a deleted session's shard can never serve it to a new session with the same id)."""
    return f"{session_prefix(tenant, session_id)}recall/{incarnation}/{first_seq:010d}-{last_seq:010d}.json"


SESSIONS_ROOT = "tenants/"


def parse_session_object(key: str) -> tuple[str, str, str] | None:
    """(tenant, session id, kind) of a session object's key, kind being ``turns`` or ``recall``; else None."""
    parts = key.split("/")
    if len(parts) >= 6 and parts[0] == "tenants" and parts[2] == "sessions" and parts[4] in ("turns", "recall"):
        return parts[1], parts[3], parts[4]
    return None


def cache_body_key(tenant: str, name: str) -> str:
    return f"tenants/{tenant}/cache/{name}.json"
