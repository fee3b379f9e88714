"""Patches that make moto behave like the real services where ctxgate depends on it. Pinned: moto==5.2.1.

DynamoDB transactions: moto's ``transact_write_items`` deep-copies each table, applies the operations one by
one, and on a failed condition *restores the copy*, silently discarding whatever other threads committed in
between. Real DynamoDB serializes writes to an item, so the conditional appends that sessions rely on would be
lost only under moto. Holding one lock around every DynamoDB write restores serializability.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

MOTO_VERSION = "5.2.1"
_WRITE_METHODS = ("transact_write_items", "put_item", "update_item", "delete_item")
_lock = threading.RLock()


def _serialized(method: Any) -> Any:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return method(*args, **kwargs)

    wrapper.__ctxgate_serialized__ = True  # type: ignore[attr-defined]
    return wrapper


def apply() -> None:
    """Idempotent; call before serving requests (``ctxgate local``) or in test fixtures."""
    import moto
    from moto.dynamodb.models import DynamoDBBackend

    if moto.__version__ != MOTO_VERSION:
        raise RuntimeError(f"ctxgate_local.moto_patches is written against moto {MOTO_VERSION}, not {moto.__version__}")
    for name in _WRITE_METHODS:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "__ctxgate_serialized__", False):
            setattr(DynamoDBBackend, name, _serialized(method))
