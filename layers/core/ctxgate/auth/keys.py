"""API keys: issuing them, and authenticating a presented one.

A key is ``ctg_`` followed by 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: the key is
high-entropy, so a fast unkeyed hash cannot be reversed, and there is no pepper to manage. The key's id is the
first 20 hex digits of that hash, prefixed ``key_``: printable and safe to log, it finds the stored record in one
read, and it can be computed from any presented string, so fixed development keys (``ctxgate local --api-key``)
work the same way as issued ones.

Import-light (stdlib only): the authorizer's cold start pays for boto3, not for this.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ctxgate.auth.models import TENANT_PATTERN, Caller, KeyLimits
from ctxgate.auth.ports import KeyExists, KeyStore
from ctxgate.errors import InvalidRequest, NotFound, Unauthorized

KEY_PREFIX = "ctg_"
MAX_KEY_LENGTH = 256
"""Longer presented strings are refused before hashing: no key of ours is that long."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key: everything but the secret, which is never stored (only ``key_hash``)."""

    id: str
    key_hash: str
    tenant: str
    name: str = ""
    limits: KeyLimits = field(default_factory=KeyLimits)
    created_at: int = 0
    expires_at: int | None = None
    revoked: bool = False

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass(frozen=True)
class IssuedKey:
    """A newly created key: the record, and the secret, which exists only here and is shown once."""

    record: ApiKey
    secret: str


def key_hash(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def key_id_of(presented: str) -> str:
    """The id of the key ``presented`` would be; computing it reveals nothing usable about the secret."""
    return f"key_{key_hash(presented)[:20]}"


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def validate_tenant(tenant: str) -> str:
    if not TENANT_PATTERN.fullmatch(tenant or ""):
        raise InvalidRequest("Tenants are 1 to 128 characters from [A-Za-z0-9._:-].", param="tenant")
    return tenant


class KeyService:
    """Create, list, revoke and authenticate keys over a :class:`KeyStore`."""

    def __init__(self, store: KeyStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def create(
        self,
        tenant: str,
        *,
        name: str = "",
        limits: KeyLimits | None = None,
        expires_days: float | None = None,
        secret: str | None = None,
    ) -> IssuedKey:
        """Issue a key for ``tenant``. ``secret`` registers a chosen key instead of a random one (development
        keys); it must not be a key that is already registered."""
        validate_tenant(tenant)
        if expires_days is not None and expires_days <= 0:
            raise InvalidRequest("expires_days must be positive.", param="expires_days")
        secret = secret or new_secret()
        if not 8 <= len(secret) <= MAX_KEY_LENGTH or not secret.isprintable() or " " in secret:
            raise InvalidRequest("A key is 8 to 256 printable characters without spaces.", param="key")
        now = int(self.clock())
        record = ApiKey(
            id=key_id_of(secret),
            key_hash=key_hash(secret),
            tenant=tenant,
            name=name,
            limits=limits or KeyLimits(),
            created_at=now,
            expires_at=None if expires_days is None else now + int(expires_days * 86400),
        )
        try:
            self.store.create(record)
        except KeyExists:
            raise InvalidRequest("That key is already registered.", code="key_exists", param="key") from None
        return IssuedKey(record, secret)

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        return self.store.list(validate_tenant(tenant) if tenant is not None else None)

    def revoke(self, key_id: str) -> ApiKey:
        record = self.store.revoke(key_id)
        if record is None:
            raise NotFound(f"No key {key_id!r}.", code="key_not_found")
        return record

    def authenticate(self, presented: str | None) -> Caller:
        """The caller a presented key stands for. Raises :class:`Unauthorized` for a missing, malformed, unknown,
        revoked or expired key, with one message for all of them (a caller learns nothing from which it was)."""
        if not presented or len(presented) > MAX_KEY_LENGTH:
            raise Unauthorized("Missing or invalid API key.")
        digest = key_hash(presented)
        record = self.store.get(f"key_{digest[:20]}")
        if (
            record is None
            or not hmac.compare_digest(record.key_hash, digest)
            or record.revoked
            or record.expired(self.clock())
        ):
            raise Unauthorized("Missing or invalid API key.")
        return Caller(tenant=record.tenant, key_id=record.id, limits=record.limits)


def presented_key(headers: dict[str, str]) -> str | None:
    """The key of a request: ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (header names in any case).
    A request that carries both must carry the same key in both."""
    lowered = {k.lower(): v for k, v in headers.items()}
    bearer = None
    authorization = (lowered.get("authorization") or "").strip()
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        bearer = token.strip()
    api_key = (lowered.get("x-api-key") or "").strip() or None
    if bearer and api_key and bearer != api_key:
        return None
    return bearer or api_key
