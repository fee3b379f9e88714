"""The S3 key layout, in one place. Every object is under its tenant's prefix::

    tenants/{tenant}/sessions/{session}/turns/{seq:010d}-{nonce}.json   an offloaded turn body
    tenants/{tenant}/sessions/{session}/recall/{first:010d}-{last:010d}.json   a recall shard
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


def shard_key(tenant: str, session_id: str, first_seq: int, last_seq: int) -> str:
    return f"{session_prefix(tenant, session_id)}recall/{first_seq:010d}-{last_seq:010d}.json"


def cache_body_key(tenant: str, name: str) -> str:
    return f"tenants/{tenant}/cache/{name}.json"
