"""Run requests, run records and steps."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ctxgate.auth.models import Caller, KeyLimits
from ctxgate.context.models import CompactionRequest
from ctxgate.messages import Message

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "stopped_for_budget"]
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "stopped_for_budget"})

MAX_TOOLS = 64
MAX_TOOL_CALLS_PER_STEP = 16
"""Calls beyond this many in one model reply are not run: each gets an error result the model sees next step."""
MAX_STEPS_CEILING = 50
"""No run may exceed it; the limit in force is the operator's ``MaxRunSteps`` (at most this)."""
MAX_DEADLINE_CEILING_SECONDS = 3600
"""Likewise for ``deadline_seconds`` and the operator's ``MaxRunDeadlineSeconds``."""
# The transport sets these itself; a caller's value would break framing or the pinned connection's Host.
RESERVED_TOOL_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "idempotency-key"}
)


class FunctionSpec(BaseModel):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Endpoint(BaseModel):
    url: str = Field(min_length=8, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """The whole call's deadline: resolving, connecting, sending and reading the response."""

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(name for name in headers if name.strip().lower() in RESERVED_TOOL_HEADERS)
        if reserved:
            raise ValueError(f"headers may not set {', '.join(reserved)} (the gateway sets them)")
        for name, value in headers.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name[:64]!r} is not a valid HTTP header")
        return headers


class ToolSpec(BaseModel):
    """An OpenAI function tool plus where it runs: an HTTP webhook or a Lambda function."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionSpec
    endpoint: Endpoint | None = None
    lambda_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:.+$")

    @model_validator(mode="after")
    def _one_runtime(self) -> ToolSpec:
        if (self.endpoint is None) == (self.lambda_arn is None):
            raise ValueError(f"tool {self.function.name!r} needs exactly one of endpoint or lambda_arn")
        return self

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": self.function.model_dump()}


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    session_id: str | None = None
    input: list[Message] = Field(min_length=1)
    tools: list[ToolSpec] = Field(default_factory=list, max_length=MAX_TOOLS)
    max_steps: int = Field(default=8, ge=1, le=MAX_STEPS_CEILING)
    max_tokens: int | None = Field(default=None, ge=1)
    deadline_seconds: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_CEILING_SECONDS)
    """None means the gateway's longest allowed deadline: every run has one."""

    @model_validator(mode="after")
    def _unique_tools(self) -> RunRequest:
        names = [t.function.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError("tool names must be unique")
        return self


class PendingCall(BaseModel):
    id: str
    name: str
    arguments: str


class Run(BaseModel):
    id: str
    tenant: str
    status: RunStatus
    model: str
    session_id: str
    tools: list[ToolSpec]
    input: list[Message]
    max_steps: int
    max_tokens: int | None = None
    deadline_at: float | None = None
    created_at: float
    updated_at: float
    steps_used: int = 0
    tokens_used: int = 0
    pending: list[PendingCall] = Field(default_factory=list)
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    execution_arn: str | None = None
    key_id: str | None = None
    """The API key that created the run (None: a JWT caller); every model call of the run counts against it."""
    key_limits: KeyLimits = Field(default_factory=KeyLimits)
    """That key's limits when the run was created."""

    def caller(self) -> Caller:
        """Who the run's model calls are made for: its tenant, and the key that created it."""
        return Caller(tenant=self.tenant, key_id=self.key_id, limits=self.key_limits)


class Step(BaseModel):
    number: int
    kind: Literal["model", "tool"]
    started_at: float
    duration_ms: int
    in_progress: bool = False
    """A model step that has begun (its record is written before the model call) and not yet finished."""
    session_seq: int | None = None
    """For a model step: the session's last turn before the step appended to it (how a retry recognises its own
    earlier append instead of appending, and paying, again)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache: str | None = None
    tool: str | None = None
    tool_call_id: str | None = None
    is_error: bool = False
    result: str | None = None


@dataclass(frozen=True)
class RunReport:
    """A run and the steps it has taken so far."""

    run: Run
    steps: list[Step]


@dataclass(frozen=True)
class BudgetCheck:
    """Whether a run must stop (steps, tokens or deadline used up), and the compaction its session needs first."""

    over_budget: bool
    compaction: CompactionRequest | None


@dataclass(frozen=True)
class RunLimits:
    """The operator's limits on a run (``CTXGATE_MAX_RUN_STEPS``, ``CTXGATE_MAX_RUN_DEADLINE_SECONDS``); a run
    without a deadline gets the longest one allowed."""

    max_steps: int = 25
    max_deadline_seconds: int = 900

    def __post_init__(self) -> None:
        if not 1 <= self.max_steps <= MAX_STEPS_CEILING:
            raise ValueError(f"the run step limit must be between 1 and {MAX_STEPS_CEILING}")
        if not 1 <= self.max_deadline_seconds <= MAX_DEADLINE_CEILING_SECONDS:
            raise ValueError(f"the run deadline limit must be between 1 and {MAX_DEADLINE_CEILING_SECONDS} seconds")
