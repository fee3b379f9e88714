"""``assemble_context``: the one function that decides what a request sends.

Layout, in order; sections 1-4 form the stable prefix, byte-identical from turn to turn until a compaction:

1. system prompt, 2. pinned constraints, 3. summary epochs (append-only), 4. verbatim recent turns (with sticky
recall: each earlier message's recalled turns right before it), 5. recalled evicted turns relevant to the new
message, 6. the new message(s).

Only the client's own words keep their roles: the system prompt and pins (the client set them) are ``system``
messages, while summaries and recalled turns, which quote users and tools, are delimited ``user``-role data blocks
(:mod:`ctxgate.context.quoting`).

No timestamps or per-request data appear in sections 1-4, so the serialisation is deterministic.
"""

from __future__ import annotations

import itertools
import time
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
from ctxgate.context.quoting import quote_entry, recalled_entry, recalled_message
from ctxgate.context.ranking import Ranker, Scored
from ctxgate.context.recall import day_line, is_question
from ctxgate.context.summarize import epoch_message
from ctxgate.errors import InvalidRequest
from ctxgate.messages import Message
from ctxgate.sessions.models import Turn
from ctxgate.tokens import REPLY_PRIMING_TOKENS, count_message, count_text

MAX_BREAKPOINTS = 4
MIN_RECALL_LINE_TOKENS = 8
ASKING_ROLES = ("user", "tool")


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
    ranker: Ranker | None = None,
    now: float | None = None,
    max_output_tokens: int | None = None,
    min_cacheable_tokens: int = 1024,
) -> ContextPlan:
    """Plan the provider input for ``new``, sent at ``now`` (epoch seconds), under the session's budget.

    Evicted turns are recalled with ``ranker`` (lexical only when None) for the trailing run of user/tool messages
    of ``new``; a question may use the verbatim window's unused room too (``question_borrows_verbatim``).

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
    recall_cap, high, low = watermarks(state, config, input_budget)
    room = input_budget - fixed - recent_tokens - new_tokens
    shards: list[RecallShard] | None = None

    def rank(query: str, at: float) -> list[Scored]:
        nonlocal shards
        shards = state.load_shards() if shards is None else shards
        return (ranker or Ranker()).rank(shards, query, at)

    recent, sticky = [t.message for t in state.recent], []
    if config.sticky_recall and state.evicted_through:
        recent, sticky = _with_sticky_recall(state.recent, rank, config, recall_cap, input_budget - fixed, new_tokens)
    sticky_tokens = sum(tokens for _, tokens in sticky)
    add("recent", recent)
    query = " ".join(m.text() for m in _last_run(new))
    asks = is_question(query)
    fresh_room = room - sticky_tokens
    recall_budget = (
        fresh_room if asks and config.question_borrows_verbatim else min(recall_cap - sticky_tokens, fresh_room)
    )
    recalled: list[RecallDoc] = []
    if state.evicted_through and recall_budget > 0 and query.strip():
        gate = config.recall_min_relevance_question if asks else config.recall_min_relevance
        exclude = {d.seq for docs, _ in sticky for d in docs}
        recalled = pack_recalled(rank(query, time.time() if now is None else now), recall_budget, gate, exclude)
    add("recalled", [recalled_message(recalled)] if recalled else [])
    add("new", list(new))

    used = sum(s.tokens for s in sections) + REPLY_PRIMING_TOKENS
    if used > input_budget:  # an invariant, not a client error: every section above was sized to fit
        raise RuntimeError(f"context assembly overran its budget: {used} > {input_budget}")
    recalled = [*recalled, *(d for docs, _ in sticky for d in docs)]
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


def pack_recalled(ranked: list[Scored], budget: int, gate: float, exclude: set[int]) -> list[RecallDoc]:
    """The best-ranked turns that fit in ``budget`` tokens (the rendered message, exactly), if the message is
    relevant enough to recall at all: if its best-matching turn reaches ``gate``. Turns in ``exclude`` are skipped.

    The gate is on the message, not on each turn: evidence for a question is often a turn that matches it weakly
    next to one that matches it well, so once a message is worth recalling for, its room is filled in rank order.
    """
    chosen: list[RecallDoc] = []
    days: set[str | None] = set()
    used = count_message(recalled_message([]))
    if max((s.relevance for s in ranked if s.doc.seq not in exclude), default=0.0) < gate:
        return []
    for scored in ranked:
        if budget - used < MIN_RECALL_LINE_TOKENS:
            break
        doc = scored.doc
        if doc.seq in exclude:
            continue
        cost = recalled_line_cost(doc, days)
        if used + cost <= budget:
            chosen.append(doc)
            days.add(day_line(doc))
            used += cost
    # Token counts are not exactly additive across a join; drop the least relevant until the message fits.
    while chosen and count_message(recalled_message(chosen)) > budget:
        chosen.pop()
    return chosen


def recalled_line_cost(doc: RecallDoc, days: set[str | None]) -> int:
    """Tokens that listing ``doc`` adds to a recall block: its line, and its day's heading unless in ``days``."""
    day = day_line(doc)
    return count_text("\n" + quote_entry(recalled_entry(doc))) + (
        count_text("\n" + day) if day and day not in days else 0
    )


def _last_run(messages: list[Message]) -> list[Message]:
    """The trailing run of user/tool messages: what a request asks (earlier ones in it are context)."""
    run: list[Message] = []
    for message in reversed(messages):
        if message.role not in ASKING_ROLES:
            break
        run.insert(0, message)
    return run


def _with_sticky_recall(
    recent: list[Turn],
    rank: Callable[[str, float], list[Scored]],
    config: ContextConfig,
    cap: int,
    input_left: int,
    new_tokens: int,
) -> tuple[list[Message], list[tuple[list[RecallDoc], int]]]:
    """The verbatim turns with, before each run of user/tool turns, the turns recalled for it when it was sent.

    Each block is recomputed from what was stored (the run's text and time, the tokens before it, the same shards),
    so it is byte-identical to the block that request sent while the shards stay the same, i.e. until the next
    compaction. Blocks that no longer fit beside the turns stored since are dropped, oldest first.
    Returns the messages and each block's (docs, tokens).
    """
    messages: list[Message] = []
    blocks: list[tuple[int, list[RecallDoc], int]] = []  # (position in messages, docs, tokens)
    before = 0  # tokens of the verbatim turns before the current one
    seen: set[int] = set()
    sticky = 0
    for i, turn in enumerate(recent):
        starts_run = turn.message.role in ASKING_ROLES and (i == 0 or recent[i - 1].message.role not in ASKING_ROLES)
        if starts_run:
            run = list(itertools.takewhile(lambda t: t.message.role in ASKING_ROLES, recent[i:]))
            query = " ".join(t.message.text() for t in run)
            asks = is_question(query)
            # The room that run's request had for recall (assemble_context's arithmetic, with the history then).
            room_then = input_left - before - sum(t.tokens for t in run) - REPLY_PRIMING_TOKENS - sticky
            budget = room_then if asks and config.question_borrows_verbatim else min(cap - sticky, room_then)
            gate = config.recall_min_relevance_question if asks else config.recall_min_relevance
            docs = pack_recalled(rank(query, turn.created_at), budget, gate, seen) if budget > 0 and query else []
            if docs:
                block = recalled_message(docs)
                tokens = count_message(block)
                blocks.append((len(messages), docs, tokens))
                messages.append(block)
                seen.update(d.seq for d in docs)
                sticky += tokens
        messages.append(turn.message)
        before += turn.tokens
    # The room left now, after the turns stored since the blocks were chosen.
    room = input_left - sum(t.tokens for t in recent) - new_tokens
    dropped: set[int] = set()
    while blocks and sticky > room:
        position, _, tokens = blocks.pop(0)
        dropped.add(position)
        sticky -= tokens
    kept = [m for position, m in enumerate(messages) if position not in dropped]
    return kept, [(docs, tokens) for _, docs, tokens in blocks]


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
