"""Spend control around a model call: admit the request, reserve its worst case, then settle or release.

The chat service calls this for every turn (stateless, stateful, and an agent run's model steps)::

    spend.admit(caller, model, ...)            # 403/400 before anything is read or paid for
    with spend.hold(caller, worst_case) as hold:   # 429 if a window has no room for the worst case
        ... cache lookup / model call ...
        hold.served(model, usage, cost)        # or hold.cache_hit(model)
    # leaving the block without settling (an exception) releases the reservation

A caller without a key (a JWT caller) is not limited per key; its usage is still ledgered under its tenant.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal
from types import TracebackType

from ctxgate.auth.models import Caller, KeyLimits
from ctxgate.errors import InvalidRequest, PermissionDenied
from ctxgate.messages import Usage
from ctxgate.quotas.models import Counters, QuotaExceeded, RateLimitState, UsageDelta, Windows
from ctxgate.quotas.ports import LimitReached, QuotaCounters, UsageLedger

logger = logging.getLogger(__name__)

DEFAULT_MAX_BUDGET_TOKENS = 2_000_000


class SpendControl:
    """Quotas per key (``counters``), the usage ledger (``ledger``) and the hard caps on a request.

    Without ``counters`` nothing is limited per key, and without ``ledger`` nothing is recorded (a gateway built
    without a usage table, e.g. for benchmarks); the hard caps apply either way.
    """

    def __init__(
        self,
        counters: QuotaCounters | None = None,
        ledger: UsageLedger | None = None,
        *,
        max_budget_tokens: int = DEFAULT_MAX_BUDGET_TOKENS,
        default_output_tokens: int = 4096,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.counters = counters
        self.ledger = ledger
        self.max_budget_tokens = max_budget_tokens
        self.default_output_tokens = default_output_tokens
        self.clock = clock or time.time

    # -- hard caps: pure checks, before anything is read or paid for ---------------------------------------------

    def admit_model(self, caller: Caller, model: str) -> None:
        """A model outside the key's list is refused (403) before anything else, even before it is resolved."""
        if not caller.limits.allows_model(model):
            raise PermissionDenied(f"This API key may not use the model `{model}`.", code="model_not_allowed")

    def admit(
        self,
        caller: Caller,
        model: str,
        *,
        max_output_tokens: int | None,
        output_limit: int | None,
        budget_tokens: int | None = None,
    ) -> None:
        """The request's hard caps: the key's models (403), the model's ``max_output_tokens`` and the ceiling on a
        session's budget (the key's ``max_budget_tokens`` and the gateway's maximum), both 400."""
        self.admit_model(caller, model)
        if max_output_tokens is not None and output_limit is not None and output_limit > max_output_tokens:
            raise InvalidRequest(
                f"max_tokens is at most {max_output_tokens} for the model `{model}`.",
                code="max_tokens_exceeded",
                param="max_tokens",
            )
        if budget_tokens is not None:
            ceiling = self.budget_ceiling(caller.limits)
            if budget_tokens > ceiling:
                raise InvalidRequest(
                    f"X-Ctxgate-Budget is at most {ceiling} for this API key.",
                    code="budget_exceeds_limit",
                    param="X-Ctxgate-Budget",
                )

    def budget_ceiling(self, limits: KeyLimits) -> int:
        key = limits.max_budget_tokens
        return self.max_budget_tokens if key is None else min(key, self.max_budget_tokens)

    def output_cap(self, max_output_tokens: int | None, output_limit: int | None) -> int:
        """The most tokens the reply may have: the request's limit, else the model's cap, else the default."""
        return output_limit or max_output_tokens or self.default_output_tokens

    # -- quotas ----------------------------------------------------------------------------------------------------

    def check_room(self, caller: Caller) -> None:
        """Refuse (429) a key whose windows are already full, before work that may itself pay for a model call
        (planning a session's context can summarise synchronously). Not a reservation: :meth:`hold` is."""
        limits = caller.limits
        if self.counters is None or caller.key_id is None or not _metered(limits):
            return
        windows = Windows.at(self.clock())
        counters = self.counters.current(caller.key_id, windows, limits=limits)
        for limit, used, cap in (
            ("day", counters.day_tokens, limits.tokens_per_day),
            ("requests", counters.minute_requests, limits.rpm),
            ("tokens", counters.minute_tokens, limits.tpm),
        ):
            if cap is not None and used >= cap:
                raise _refusal(LimitReached(limit, counters), limits, windows, tokens=0)  # type: ignore[arg-type]

    def hold(self, caller: Caller, tokens: int) -> Hold:
        """Reserve one request and ``tokens`` (the worst case: input plus maximum output) in the key's windows.

        Raises :class:`QuotaExceeded` (429) when a window has no room, and :class:`InvalidRequest` (400) when the
        request alone exceeds a limit (it could never be served, so retrying cannot help)."""
        limits = caller.limits
        windows = Windows.at(self.clock())
        if self.counters is None or caller.key_id is None or not _metered(limits):
            return Hold(self, caller, windows, tokens, state=None, reserved=False)
        for cap, what in ((limits.tpm, "tokens per minute"), (limits.tokens_per_day, "tokens per day")):
            if cap is not None and tokens > cap:
                raise InvalidRequest(
                    f"This request may use up to {tokens} tokens (input plus max_tokens), more than this API key's "
                    f"{cap} {what}. Lower max_tokens or shorten the input.",
                    code="tokens_exceed_limit",
                    param="max_tokens",
                )
        try:
            counters = self.counters.reserve(caller.key_id, windows, tokens=tokens, limits=limits)
        except LimitReached as refused:
            raise _refusal(refused, limits, windows, tokens=tokens) from None
        return Hold(self, caller, windows, tokens, state=rate_limit_state(limits, counters, windows), reserved=True)


class Hold:
    """A reservation in flight. Settle it with :meth:`served` or :meth:`cache_hit`; used as a context manager,
    leaving the block unsettled (an exception) releases it."""

    def __init__(
        self,
        spend: SpendControl,
        caller: Caller,
        windows: Windows,
        tokens: int,
        *,
        state: RateLimitState | None,
        reserved: bool,
    ) -> None:
        self.spend = spend
        self.caller = caller
        self.windows = windows
        self.tokens = tokens
        self.state = state
        """The key's rate-limit state: after the reservation, then after the settlement."""
        self._open = reserved
        self._settled = False

    def __enter__(self) -> Hold:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self._settled:
            self.release()

    def served(self, model: str, usage: Usage, cost: Decimal) -> None:
        """The model answered (``model`` is the one that served it): count the actual tokens, ledger the cost."""
        self._settle(usage.total_tokens)
        delta = UsageDelta(
            input_tokens=usage.prompt_tokens,
            cached_input_tokens=usage.cached_tokens,
            output_tokens=usage.completion_tokens,
            cost_usd=cost,
        )
        self._record(model, delta)

    def cache_hit(self, model: str) -> None:
        """A cached response was served: the request counts, its tokens do not."""
        self._settle(0)
        self._record(model, UsageDelta(cache_hits=1))

    def release(self) -> None:
        """Give the whole reservation back (the call failed, or nothing was served)."""
        self._settled = True
        if self._open:
            self._open = False
            self._adjust(requests=-1, tokens=-self.tokens)

    def _settle(self, actual_tokens: int) -> None:
        self._settled = True
        if self._open:
            self._open = False
            self._adjust(requests=0, tokens=actual_tokens - self.tokens)

    def _adjust(self, *, requests: int, tokens: int) -> None:
        # The model call already happened: a failed write must not fail the response. The counters then keep the
        # worst case, which errs on the safe side.
        counters, limits = self.spend.counters, self.caller.limits
        if counters is None or self.caller.key_id is None or (requests == 0 and tokens == 0):
            return
        try:
            after = counters.adjust(self.caller.key_id, self.windows, requests=requests, tokens=tokens, limits=limits)
        except Exception:
            logger.exception("quota settlement failed", extra={"key_id": self.caller.key_id})
            return
        self.state = rate_limit_state(limits, after, self.windows)

    def _record(self, model: str, delta: UsageDelta) -> None:
        ledger = self.spend.ledger
        if ledger is None:
            return
        try:
            ledger.record(self.caller.tenant, self.caller.key_id, model, self.windows.day, delta)
        except Exception:
            logger.exception("usage ledger write failed", extra={"tenant": self.caller.tenant})


def rate_limit_state(limits: KeyLimits, counters: Counters, windows: Windows) -> RateLimitState:
    state = RateLimitState()
    if limits.rpm is not None:
        state = RateLimitState(
            limit_requests=limits.rpm,
            remaining_requests=max(0, limits.rpm - counters.minute_requests),
            reset_requests=windows.minute_reset,
        )
    if limits.tpm is not None:
        tokens = (limits.tpm, max(0, limits.tpm - counters.minute_tokens), windows.minute_reset)
    elif limits.tokens_per_day is not None:
        tokens = (limits.tokens_per_day, max(0, limits.tokens_per_day - counters.day_tokens), windows.day_reset)
    else:
        return state
    return RateLimitState(
        state.limit_requests, state.remaining_requests, state.reset_requests, tokens[0], tokens[1], tokens[2]
    )


def _metered(limits: KeyLimits) -> bool:
    return limits.rpm is not None or limits.tpm is not None or limits.tokens_per_day is not None


def _refusal(refused: LimitReached, limits: KeyLimits, windows: Windows, *, tokens: int) -> QuotaExceeded:
    state = rate_limit_state(limits, refused.counters, windows)
    if refused.limit == "day":
        return QuotaExceeded(
            f"This API key's daily allowance of {limits.tokens_per_day} tokens is used up; it renews at 00:00 UTC.",
            retry_after=windows.day_reset,
            code="insufficient_quota",
            state=state,
        )
    if refused.limit == "requests":
        message = f"Rate limit reached: {limits.rpm} requests per minute for this API key."
    else:
        message = f"Rate limit reached: {limits.tpm} tokens per minute for this API key (this request needs {tokens})."
    return QuotaExceeded(message, retry_after=windows.minute_reset, code="rate_limit_exceeded", state=state)
