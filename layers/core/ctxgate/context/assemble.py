"""``assemble_context``: the one function that decides what a request sends.

Layout, in order; sections 1-4 form the stable prefix, byte-identical from turn to turn until a compaction:

1. system prompt, 2. pinned constraints, 3. summary epochs (append-only), 4. verbatim recent turns,
5. recalled evicted turns relevant to the new message, 6. the new message(s).

No timestamps or per-request data appear in sections 1-4, so the serialisation is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ctxgate.context.models import (
    Breakpoint,
    Budget,
    ContextConfig,
    ContextPlan,
    Epoch,
    Pin,
    RecallDoc,
    RecallShard,
    Section,
)
from ctxgate.context.recall import RECALL_HEADER, is_question, recall_line, render_recalled, score
from ctxgate.context.summarize import epoch_message
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message
from ctxgate.sessions.models import Turn
from ctxgate.tokens import REPLY_PRIMING_TOKENS, count_message, count_text

MAX_BREAKPOINTS = 4


class ContextBudgetExceeded(InvalidRequest):
    code = "context_budget_exceeded"


class NeedsCompaction(Exception):
    """The verbatim history no longer fits: compact synchronously, then assemble again."""


@dataclass
class ContextState:
    """A session's context as stored: everything assembly needs except the new message."""

    system_prompt: str | None
    pins: list[Pin]
    epochs: list[Epoch]
    recent: list[Turn]
    """Verbatim turns, every seq after the last evicted one, in order."""
    evicted_through: int
    budget_tokens: int
    output_reserve: int
    load_shards: Callable[[], list[RecallShard]] = field(default=lambda: [])


def default_output_reserve(budget_tokens: int) -> int:
    return min(1024, budget_tokens // 8)


def pins_message(pins: list[Pin]) -> Message:
    lines = ["Pinned constraints (they always apply, whatever comes later):"]
    lines += [f"{i}. {pin.content}" for i, pin in enumerate(pins, start=1)]
    return Message(role="system", content="\n".join(lines))


def watermarks(state: ContextState, config: ContextConfig, input_budget: int) -> tuple[int, int, int]:
    """(recall cap, high-water, low-water) in tokens of the verbatim section."""
    recall_cap = int(input_budget * config.recall_share)
    fixed = fixed_tokens(state)
    room = max(0, input_budget - recall_cap - fixed)
    return recall_cap, int(room * config.high_water), int(room * config.low_water)


def fixed_tokens(state: ContextState) -> int:
    system = count_message(Message(role="system", content=state.system_prompt)) if state.system_prompt else 0
    pins = count_message(pins_message(state.pins)) if state.pins else 0
    return system + pins + sum(e.tokens for e in state.epochs)


def assemble_context(
    state: ContextState,
    new: list[Message],
    config: ContextConfig,
    *,
    max_output_tokens: int | None = None,
    min_cacheable_tokens: int = 1024,
) -> ContextPlan:
    """Plan the provider input for ``new`` under the session's budget.

    Raises :class:`ContextBudgetExceeded` (4xx) when the system prompt, pins and new message alone cannot fit,
    and :class:`NeedsCompaction` when the verbatim history must be evicted first. Never returns a plan over
    budget.
    """
    reserve = max(state.output_reserve, max_output_tokens or 0)
    input_budget = state.budget_tokens - reserve
    sections: list[Section] = []

    def add(name: str, messages: list[Message]) -> None:
        sections.append(Section(name=name, messages=messages, tokens=sum(count_message(m) for m in messages)))

    add("system", [Message(role="system", content=state.system_prompt)] if state.system_prompt else [])
    add("pins", [pins_message(state.pins)] if state.pins else [])
    new_tokens = sum(count_message(m) for m in new) + REPLY_PRIMING_TOKENS
    essential = sections[0].tokens + sections[1].tokens + new_tokens
    if essential > input_budget:
        raise ContextBudgetExceeded(
            f"The system prompt, pins and new message need {essential} tokens, but the session's input budget is "
            f"{input_budget} ({state.budget_tokens} minus an output reserve of {reserve}). Raise the budget, "
            "remove pins, or send a shorter message.",
            param="messages",
        )
    # Summaries that no longer fit beside the essentials are left out, oldest first (they stay stored).
    epochs = list(state.epochs)
    while epochs and essential + sum(e.tokens for e in epochs) > input_budget:
        epochs.pop(0)
    add("summaries", [epoch_message(e.first_seq, e.last_seq, e.summary) for e in epochs])
    fixed = sum(s.tokens for s in sections)
    recent_tokens = sum(t.tokens for t in state.recent)
    if fixed + recent_tokens + new_tokens > input_budget:
        raise NeedsCompaction(f"{fixed + recent_tokens + new_tokens} tokens over an input budget of {input_budget}")
    add("recent", [t.message for t in state.recent])

    recall_cap, high, low = watermarks(state, config, input_budget)
    recall_budget = min(recall_cap, input_budget - fixed - recent_tokens - new_tokens)
    recalled = _recall(state, new, recall_budget, config) if state.evicted_through and recall_budget > 0 else []
    add("recalled", [Message(role="system", content=render_recalled(recalled))] if recalled else [])
    add("new", list(new))

    used = sum(s.tokens for s in sections) + REPLY_PRIMING_TOKENS
    if used > input_budget:  # an invariant, not a client error: every section above was sized to fit
        raise RuntimeError(f"context assembly overran its budget: {used} > {input_budget}")
    recalled_seqs = sorted(d.seq for d in recalled)
    summarised = [(e.first_seq, e.last_seq) for e in epochs]
    return ContextPlan(
        sections=sections,
        budget=Budget(
            budget_tokens=state.budget_tokens,
            output_reserve=reserve,
            input_budget=input_budget,
            recall_budget=max(0, recall_budget),
            high_water=high,
            low_water=low,
            used_tokens=used,
        ),
        included=[t.seq for t in state.recent],
        summarised=summarised,
        recalled=recalled_seqs,
        evicted=[s for s in range(1, state.evicted_through + 1) if s not in set(recalled_seqs)],
        breakpoints=_breakpoints(sections, min_cacheable_tokens),
    )


def _recall(state: ContextState, new: list[Message], budget: int, config: ContextConfig) -> list[RecallDoc]:
    """The most relevant evicted turns that fit in ``budget`` tokens (the rendered message, exactly)."""
    query = " ".join(m.text() for m in new if m.role in ("user", "tool"))
    chosen: list[RecallDoc] = []
    used = count_message(Message(role="system", content=RECALL_HEADER))
    gate = config.recall_min_relevance_question if is_question(query) else config.recall_min_relevance
    for relevance, doc in score(state.load_shards(), query):
        if relevance < gate:
            break
        cost = count_text("\n" + recall_line(doc))
        if used + cost <= budget:
            chosen.append(doc)
            used += cost
    # Token counts are not exactly additive across a join; drop the least relevant until the message fits.
    while chosen and count_message(Message(role="system", content=render_recalled(chosen))) > budget:
        chosen.pop()
    return chosen


def _breakpoints(sections: list[Section], min_cacheable: int) -> list[Breakpoint]:
    """Ends of the stable sections whose prefix is long enough to be cached; the last four at most."""
    points: list[Breakpoint] = []
    index = -1
    tokens = 0
    for section in sections:
        if section.name in ("recalled", "new"):
            break
        index += len(section.messages)
        tokens += section.tokens
        if section.messages and tokens >= min_cacheable:
            points.append(Breakpoint(message_index=index, section=section.name, tokens_before=tokens))
    return points[-MAX_BREAKPOINTS:]


def plan_eviction(recent: list[Turn], low_water: int) -> int | None:
    """The seq through which to evict so the verbatim section falls to ``low_water`` tokens.

    The cut never splits a turn, and the kept history starts at a user message, so an assistant tool call is
    never separated from its tool results. None when nothing needs to go.
    """
    total = sum(t.tokens for t in recent)
    cut = 0
    while cut < len(recent) and total > low_water:
        total -= recent[cut].tokens
        cut += 1
    while cut < len(recent) and recent[cut].message.role != "user":
        cut += 1
    return recent[cut - 1].seq if cut else None
