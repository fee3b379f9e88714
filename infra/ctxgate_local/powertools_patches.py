"""Powertools' resolver keeps the request it is serving in class attributes (``BaseRouter.current_event``,
``BaseRouter.lambda_context``) and in its instance's ``context``: right for Lambda, where one process serves one
request at a time, wrong for ``ctxgate local``, which serves concurrent requests on threads of one process. Two
concurrent requests would read each other's event (a turn stored with another request's message).

This makes those three per thread, so each thread is the one-request-at-a-time process Lambda would give it. The
deployed code is unchanged. Pinned to the attribute names of aws-lambda-powertools 3.x (checked by a test).
"""

from __future__ import annotations

import threading
from typing import Any

_state = threading.local()
_applied = False


class _PerThread:
    """A data descriptor whose value is per thread (and per name)."""

    def __init__(self, name: str, default: Any = None) -> None:
        self.name = name
        self.default = default

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if not hasattr(_state, "values"):
            _state.values = {}
        if self.name not in _state.values:
            if not callable(self.default):
                return self.default
            _state.values[self.name] = self.default()  # a fresh mutable value, kept for this thread
        return _state.values[self.name]

    def __set__(self, instance: Any, value: Any) -> None:
        if not hasattr(_state, "values"):
            _state.values = {}
        _state.values[self.name] = value


def apply() -> None:
    """Make ``BaseRouter.current_event``, ``BaseRouter.lambda_context`` and the resolver's ``context`` per thread."""
    global _applied
    if _applied:
        return
    from aws_lambda_powertools.event_handler import api_gateway

    base = api_gateway.BaseRouter

    # Class-level assignments (``BaseRouter.current_event = ...``) go through a data descriptor on the metaclass;
    # instance reads (``self.current_event``) through one in the class. Both share the per-thread value.
    class PerThreadRouterMeta(type(base)):  # type: ignore[misc]
        current_event = _PerThread("current_event")
        lambda_context = _PerThread("lambda_context")

    for name in ("current_event", "lambda_context"):
        if name in base.__dict__:
            delattr(base, name)
        setattr(base, name, _PerThread(name))
    base.__class__ = PerThreadRouterMeta
    # The resolver sets ``self.context = {}`` in __init__ and clears it per request: a per-thread dict instead.
    api_gateway.ApiGatewayResolver.context = _PerThread("context", default=dict)  # type: ignore[assignment]
    _applied = True
