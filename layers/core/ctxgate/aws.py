"""boto3 clients, created lazily and shared per process.

boto3 honours ``AWS_ENDPOINT_URL`` itself, which is how ``ctxgate local`` and the tests point every client at
moto; nothing here special-cases local runs.
"""

from __future__ import annotations

import threading
from typing import Any

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    with _lock:
        if service not in _clients:
            import boto3

            _clients[service] = boto3.session.Session().client(service)
        return _clients[service]


def reset_clients() -> None:
    """Forget cached clients (after the endpoint or credentials in the environment changed)."""
    with _lock:
        _clients.clear()
