"""The one error hierarchy of ctxgate.

Every error that reaches a client is a :class:`CtxgateError`. It carries the HTTP status and the
OpenAI-style ``type``/``code`` pair, so the API layer maps any of them to
``{"error": {"message", "type", "code", "request_id"}}`` without knowing where it came from.

A message is shown to clients verbatim, so it never carries upstream response text, internal hosts or stack
traces: whoever raises an error with such details logs them and raises a generic message.
"""

from __future__ import annotations

from typing import Any


class CtxgateError(Exception):
    """Base class: a failure with a client-facing status, type and code."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param

    def to_body(self, request_id: str | None = None) -> dict[str, Any]:
        """The OpenAI-style body; ``request_id`` (also sent as ``x-request-id``) ties it to the logs."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.param is not None:
            error["param"] = self.param
        if request_id:
            error["request_id"] = request_id
        return {"error": error}


class InvalidRequest(CtxgateError):
    """The request is malformed or violates a documented limit (400)."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(CtxgateError):
    """No valid credentials: a missing, malformed, unknown, revoked or expired key (401)."""

    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(CtxgateError):
    """The caller is known but its key does not allow this (403), e.g. a model outside the key's list."""

    status = 403
    type = "permission_error"
    code = "permission_denied"


class RateLimited(CtxgateError):
    """A quota would be exceeded (429). ``retry_after`` is the seconds until the limiting window has room."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, retry_after)


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class NotFound(InvalidRequest):
    status = 404
    code = "not_found"


class UnknownModel(NotFound):
    code = "model_not_found"


class SessionConflict(CtxgateError):
    """Concurrent writers kept winning the race for a session's next turn (409)."""

    status = 409
    type = "conflict_error"
    code = "session_conflict"


class ProviderFailure(CtxgateError):
    """Every configured provider for a model failed after retries and fallbacks (502/503)."""

    status = 502
    type = "upstream_error"
    code = "provider_error"

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message, code="provider_unavailable" if unavailable else "provider_error")
        self.status = 503 if unavailable else 502


class UpstreamRejected(InvalidRequest):
    """The provider refused the request itself (a non-retryable 4xx): the client must change it.

    The provider's own error text is logged, never returned: it can name internal hosts and echo prompts."""

    code = "upstream_rejected"

    @classmethod
    def of(cls, model: str, status: int, reason: str | None) -> UpstreamRejected:
        """The client-facing error for a provider's refusal with HTTP ``status`` and a safe ``reason`` code."""
        if reason == "context_length_exceeded":
            return cls(f"The request is too long for the model `{model}`'s context window.", code=reason)
        if status == 413:
            return cls(f"The request is too large for the model `{model}`.", code="upstream_request_too_large")
        return cls(f"The model `{model}` rejected the request (upstream status {status}).")
