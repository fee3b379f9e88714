"""Ports of the identity domain: where API keys are stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ctxgate.auth.keys import ApiKey


class KeyExists(Exception):
    """A key with this id is already stored (the same secret was registered twice)."""


class KeyStore(Protocol):
    def create(self, key: ApiKey) -> None:
        """Store a new key; raises :class:`KeyExists` if its id is taken."""
        ...

    def get(self, key_id: str) -> ApiKey | None: ...

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key, or one tenant's, oldest first."""
        ...

    def revoke(self, key_id: str) -> ApiKey | None:
        """Mark a key revoked (idempotent) and return it; None if there is no such key."""
        ...
