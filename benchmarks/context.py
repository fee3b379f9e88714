"""``ctxgate bench context``: replay LoCoMo conversations through the real context engine, then ask the questions.

Protocol (issue 3): a fixed ~1,500-token system prompt; each conversation replayed in order with ``speaker_a`` as
the user and ``speaker_b`` as the assistant. Every run of ``speaker_a`` turns is one request whose assembled
context is measured; the following ``speaker_b`` turn is what the (scripted) model replies, so it is stored as
the assistant's turn. Two pinned constraints are added through the pins API, before turn 1 and at the middle.
Compaction goes through the real SQS queue and consumer handler (moto), drained after every request as Lambda
would. After the replay, every question whose category is not 5 is assembled as the next user message and its
evidence turns are looked for, verbatim, in the plan.

Time is the conversation's own (issue 13): an injected clock reads each session's date, so every turn is stored
with the time it was said and the questions are asked the day after the last session.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SYSTEM_PROMPT = (Path(__file__).parent / "data" / "system_prompt.md").read_text()
PINS = (
    "Never suggest alcohol, bars or drinking games: the user is in recovery.",
    "Always write dates as day month year, for example 8 May 2023.",
)
TENANT = "bench"
MODEL = "replay"
CACHE_MIN_TOKENS, CACHE_STEP = 1024, 128  # OpenAI's prompt-caching rules
CACHE_WRITE, CACHE_READ = 1.25, 0.10  # Anthropic's price multipliers
PREVIOUS_REQUESTS = 4
CATEGORIES = {1: "multi_hop", 2: "temporal", 3: "open_domain", 4: "single_hop"}  # LoCoMo's; 5 (adversarial) is skipped
SECONDS_PER_TURN = 30
UNCACHED_CAUSES = ("steady", "after_compaction", "recall")
TEN_YEARS = 10 * 365 * 86400  # session TTL: the replayed clock is years behind the wall clock moto's reads compare to


@dataclass
class Request:
    new: list[tuple[str, str, str]]  # (role, dia_id, content)
    reply: tuple[str, str] | None  # (dia_id, content)


@dataclass
class Totals:
    requests: int = 0
    input_tokens: int = 0
    full_resend_tokens: int = 0
    cached_tokens: int = 0
    modeled_cost: float = 0.0
    pin_checks: int = 0
    pins_present: int = 0
    budget_violations: int = 0
    questions: int = 0
    evidence_complete: int = 0
    compactions: int = 0
    recalled_tokens: int = 0
    per_conversation: list[dict[str, Any]] = field(default_factory=list)
    by_category: dict[str, list[int]] = field(default_factory=dict)
    """category -> [questions, with all evidence present]"""
    recall_ms: list[float] = field(default_factory=list)
    """Time spent ranking evicted turns in each request that had any."""
    uncached_by_cause: dict[str, int] = field(default_factory=lambda: dict.fromkeys(UNCACHED_CAUSES, 0))
    """Input tokens the prefix cache did not serve, by what the request was (see ``uncached_cause``)."""
    recall_by_kind: dict[str, list[int]] = field(
        default_factory=lambda: {"question": [0, 0, 0], "statement": [0, 0, 0]}
    )
    """What the replay's own messages recalled, by whether they ask (``is_question``): [requests, requests with a
    recall block, recalled tokens]. The QA questions asked after the replay are not among them."""


def _content(turn: dict[str, Any]) -> str:
    text = turn["text"]
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def session_time(text: str) -> float:
    """LoCoMo's session date, e.g. "1:56 pm on 8 May, 2023", as epoch seconds (UTC)."""
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC).timestamp()


def session_keys(conv: dict[str, Any]) -> list[str]:
    """A LoCoMo conversation's session keys ("session_1", "session_2", ...), in session order."""
    return sorted((k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1]))


def turn_times(conversation: dict[str, Any]) -> dict[str, float]:
    """dia_id -> when it was said: its session's date, plus ``SECONDS_PER_TURN`` per earlier turn of the session.
    A conversation without session dates starts on 1 January 2023 and advances a turn at a time."""
    conv = conversation["conversation"]
    times: dict[str, float] = {}
    clock = datetime(2023, 1, 1, tzinfo=UTC).timestamp()
    for key in session_keys(conv):
        if conv.get(f"{key}_date_time"):
            clock = max(clock, session_time(conv[f"{key}_date_time"]))
        for turn in conv[key]:
            times[turn["dia_id"]] = clock
            clock += SECONDS_PER_TURN
    return times


class ReplayClock:
    """The injected clock: ``now`` is set by the replay, not read from the wall."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def requests_of(conversation: dict[str, Any]) -> list[Request]:
    """Group a conversation into requests: a run of speaker_a turns (after any unanswered speaker_b turns, sent
    along as assistant messages) and the speaker_b turn that answers it."""
    conv = conversation["conversation"]
    keys = session_keys(conv)
    turns = [t for k in keys for t in conv[k]]
    user = conv["speaker_a"]
    requests: list[Request] = []
    pending: list[tuple[str, str, str]] = []
    index = 0
    while index < len(turns):
        turn = turns[index]
        if turn["speaker"] != user:
            pending.append(("assistant", turn["dia_id"], _content(turn)))
            index += 1
            continue
        while index < len(turns) and turns[index]["speaker"] == user:
            pending.append(("user", turns[index]["dia_id"], _content(turns[index])))
            index += 1
        reply = None
        if index < len(turns):
            reply = (turns[index]["dia_id"], _content(turns[index]))
            index += 1
        requests.append(Request(new=pending, reply=reply))
        pending = []
    return requests


class ScriptedProvider:
    """The model of the replay: it answers with the conversation's own next speaker_b turn."""

    def __init__(self) -> None:
        self.next_reply = ""

    def complete(self, request: Any) -> Any:
        from ctxgate.messages import Completion, Message

        return Completion(message=Message(role="assistant", content=self.next_reply or "(no reply)"))


class PrefixCache:
    """OpenAI's prompt-cache rule, per session: the longest prefix shared with a recent request, if it is at
    least 1,024 tokens, rounded down to a multiple of 128."""

    def __init__(self) -> None:
        self.previous: list[list[int]] = []

    def hit(self, sequence: list[int]) -> int:
        best = 0
        for earlier in self.previous:
            limit = min(len(earlier), len(sequence))
            common = 0
            while common < limit and earlier[common] == sequence[common]:
                common += 1
            best = max(best, common)
        self.previous = [*self.previous[-(PREVIOUS_REQUESTS - 1) :], sequence]
        cached = best // CACHE_STEP * CACHE_STEP
        return cached if cached >= CACHE_MIN_TOKENS else 0


def token_sequence(messages: list[Any]) -> list[int]:
    from ctxgate.tokens import encode

    roles = {"system": -1, "user": -2, "assistant": -3, "tool": -4}
    sequence: list[int] = []
    for message in messages:
        sequence += [roles[message.role], -10, -11]  # the per-message framing, as 3 tokens
        if message.name:
            sequence += [-12, *encode(message.name)]
        sequence += encode(message.text())
    return sequence


OVERRIDES = (
    "CTXGATE_RECALL_MIN_RELEVANCE",
    "CTXGATE_RECALL_MIN_RELEVANCE_QUESTION",
    "CTXGATE_RECALL_EMBEDDINGS",
    "CTXGATE_STICKY_RECALL",
    "CTXGATE_RECALL_SHARE",
)


def select(conversations: list[Any], limit: int | None, chosen: str | None) -> list[Any]:
    """``chosen`` is a list of indexes and ranges into the dataset, e.g. "0-2" or "3,4"; then ``limit`` applies."""
    if chosen:
        indexes: list[int] = []
        for part in chosen.split(","):
            first, _, last = part.strip().partition("-")
            indexes += range(int(first), int(last or first) + 1)
        conversations = [conversations[i] for i in indexes]
    return conversations[:limit]


def run(
    dataset: Path, budget: int, limit: int | None = None, conversations_arg: str | None = None
) -> tuple[dict[str, Any], Totals]:
    from benchmarks.local_aws import local_aws

    started = time.perf_counter()
    conversations = select(json.loads(dataset.read_text()), limit, conversations_arg)
    environment = {k: os.environ[k] for k in OVERRIDES if k in os.environ}
    with local_aws(**environment, CTXGATE_SESSION_TTL_SECONDS=str(TEN_YEARS)) as stack:
        totals = _replay_all(conversations, budget, stack)
    latency = sorted(totals.recall_ms) or [0.0]
    return {
        "conversations": len(conversations),
        "questions": totals.questions,
        "evidence_recall": round(totals.evidence_complete / max(1, totals.questions), 4),
        "cumulative_input_tokens": totals.input_tokens,
        "full_resend_input_tokens": totals.full_resend_tokens,
        "cumulative_input_ratio": round(totals.input_tokens / max(1, totals.full_resend_tokens), 4),
        "prefix_cache_hit_ratio": round(totals.cached_tokens / max(1, totals.input_tokens), 4),
        "modeled_cost_ratio": round(totals.modeled_cost / max(1, totals.full_resend_tokens), 4),
        "pins_retained": round(totals.pins_present / max(1, totals.pin_checks), 4),
        "budget_violations": totals.budget_violations,
        "evidence_recall_by_category": {
            name: round(totals.by_category[name][1] / max(1, totals.by_category[name][0]), 4)
            for name in CATEGORIES.values()
            if name in totals.by_category
        },
        "uncached_share_by_cause": {
            cause: round(tokens / max(1, totals.input_tokens), 4) for cause, tokens in totals.uncached_by_cause.items()
        },
        "recall_by_message_kind": {
            kind: {
                "requests": requests,
                "with_recall": with_recall,
                "share_of_input": round(tokens / max(1, totals.input_tokens), 4),
            }
            for kind, (requests, with_recall, tokens) in totals.recall_by_kind.items()
        },
        "recall_p50_ms": round(statistics.median(latency), 2),
        "recall_p99_ms": round(latency[min(len(latency) - 1, int(len(latency) * 0.99))], 2),
        "seconds": round(time.perf_counter() - started, 1),
    }, totals


def uncached_cause(recalled_tokens: int, summarised: list[Any], summarised_before: list[Any] | None) -> str:
    """Why a request's input was not all served from the cache: it carried a fresh recall block ("recall"), or a
    compaction landed since the session's previous request ("after_compaction": the summaries and the verbatim
    turns changed), or neither ("steady": the new message, the previous reply and the cache's 128-token rounding).
    """
    if recalled_tokens:
        return "recall"
    if summarised_before is not None and summarised != summarised_before:
        return "after_compaction"
    return "steady"


def _replay_all(conversations: list[dict[str, Any]], budget: int, stack: Any) -> Totals:
    import boto3
    from ctxgate.bootstrap import build_chat, build_sessions, context_engine
    from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
    from ctxgate.retry import RetryPolicy
    from ctxgate.settings import get_settings

    session = boto3.session.Session(region_name="us-east-1")
    scripted = ScriptedProvider()
    models = ModelsFile(models=[ModelConfig(name=MODEL, provider="echo", upstream_model=MODEL)])
    router = ModelRouter(models, RetryPolicy(), provider_factory=lambda config, timeout: scripted)
    service = build_chat(get_settings(), router)
    if service.cache is not None:
        service.cache.metrics = None  # EMF lines on stdout belong in Lambda logs, not in a benchmark's output
    context_engine().compactor.summarizer.router = router  # the consumer summarises with the replay's models too
    consumer = stack.functions["CompactContextFunction"]
    totals = Totals()
    clock = ReplayClock()
    # One clock for everything that reads time: the turns' timestamps and session expiry (the replay's dates are
    # years in the past), in this process's service and in the compaction consumer's.
    service.clock = service.engine.clock = service.store.clock = context_engine().store.clock = clock
    ranking = _time_ranking(service.engine.ranker)
    sessions = build_sessions(service)
    for conversation in conversations:
        _replay(
            conversation,
            budget,
            service,
            sessions,
            scripted,
            stack,
            consumer,
            session.client("sqs"),
            totals,
            clock,
            ranking,
        )
    return totals


def _time_ranking(ranker: Any) -> list[float]:
    """Accumulate the seconds ``ranker.rank`` takes into the returned one-item list (the replay resets it)."""
    spent = [0.0]
    untimed = ranker.rank

    def rank(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return untimed(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    ranker.rank = rank
    return spent


def _replay(
    conversation: dict[str, Any],
    budget: int,
    service: Any,
    sessions: Any,
    scripted: ScriptedProvider,
    stack: Any,
    consumer: Any,
    sqs: Any,
    totals: Totals,
    clock: ReplayClock,
    ranking: list[float],
) -> None:
    from ctxgate.auth.models import Caller
    from ctxgate.chat.models import ChatRequest
    from ctxgate.context.recall import is_question
    from ctxgate.messages import GenerationParams, Message
    from ctxgate.tokens import REPLY_PRIMING_TOKENS, count_message, count_messages
    from ctxgate_local.sqs_delivery import deliver_once

    session_id = conversation["sample_id"]
    user, assistant = conversation["conversation"]["speaker_a"], conversation["conversation"]["speaker_b"]
    requests = requests_of(conversation)
    times = turn_times(conversation)
    seq_of: dict[str, int] = {}
    content_of: dict[str, str] = {}
    cache = PrefixCache()
    pins: list[str] = []
    transcript_tokens = count_message(Message(role="system", content=SYSTEM_PROMPT)) + REPLY_PRIMING_TOKENS
    first = totals.requests
    summarised_before: list[Any] | None = None
    for number, request in enumerate(requests):
        clock.now = times[request.new[-1][1]]
        if number in (0, len(requests) // 2):
            pin = PINS[len(pins)]
            sessions.add_pin(TENANT, session_id, pin)
            pins.append(pin)
            transcript_tokens += count_message(Message(role="user", content=pin))  # a client would resend it too
        new = [
            Message(role=role, name=user if role == "user" else assistant, content=text)
            for role, _, text in request.new
        ]
        if number == 0:
            new.insert(0, Message(role="system", content=SYSTEM_PROMPT))
        scripted.next_reply = request.reply[1] if request.reply else ""
        ranking[0] = 0.0
        turn = ChatRequest(model=MODEL, messages=new, params=GenerationParams(), budget_tokens=budget)
        outcome = service.stateful(Caller(TENANT), session_id, turn)
        if ranking[0]:
            totals.recall_ms.append(ranking[0] * 1000)
        plan = outcome.plan
        messages = plan.messages
        total = count_messages(messages)
        full = transcript_tokens + sum(count_message(m) for m in new if m.role != "system")
        hit = cache.hit(token_sequence(messages))
        stable = plan.stable_prefix_tokens()
        write = max(0, stable - hit) if stable >= CACHE_MIN_TOKENS else 0
        totals.requests += 1
        totals.input_tokens += total
        totals.full_resend_tokens += full
        totals.cached_tokens += hit
        totals.modeled_cost += hit * CACHE_READ + write * CACHE_WRITE + max(0, total - hit - write)
        recalled_tokens = sum(s.tokens for s in plan.sections if s.name == "recalled")
        totals.recalled_tokens += recalled_tokens
        asked = " ".join(text for role, _, text in request.new if role == "user")
        kind = totals.recall_by_kind["question" if is_question(asked) else "statement"]
        kind[0], kind[1], kind[2] = kind[0] + 1, kind[1] + bool(recalled_tokens), kind[2] + recalled_tokens
        totals.uncached_by_cause[uncached_cause(recalled_tokens, plan.summarised, summarised_before)] += total - hit
        summarised_before = plan.summarised
        if total + plan.budget.output_reserve > budget:
            totals.budget_violations += 1
        rendered = "\n".join(m.text() for m in messages)
        totals.pin_checks += len(pins)
        totals.pins_present += sum(1 for p in pins if p in rendered)
        # Map dia_ids to the stored turns' sequence numbers.
        stored = [(dia, text) for _, dia, text in request.new] + ([request.reply] if request.reply else [])
        for offset, (dia, text) in enumerate(stored, start=outcome.turn - len(stored) + 1):
            seq_of[dia], content_of[dia] = offset, text
        # The transcript a full-resend client would send next: this request's messages plus the stored reply.
        transcript_tokens = full + (count_message(outcome.completion.message) if request.reply else 0)
        while deliver_once(sqs, consumer, consumer.queues[0], stack):
            totals.compactions += 1
    asked = complete = 0
    clock.now = max(times.values(), default=clock.now) + 86400  # the questions come the day after
    for qa in conversation["qa"]:
        if qa["category"] not in CATEGORIES:
            continue
        plan = sessions.inspect(TENANT, session_id, str(qa["question"]), MODEL)
        present = set(plan.included) | set(plan.recalled)
        rendered = "\n".join(m.text() for m in plan.messages)
        evidence = [e.strip() for ref in qa["evidence"] for e in str(ref).split(";") if e.strip()]
        asked += 1
        found = bool(evidence) and all(
            e in seq_of and seq_of[e] in present and content_of[e] in rendered for e in evidence
        )
        complete += found
        tally = totals.by_category.setdefault(CATEGORIES[qa["category"]], [0, 0])
        tally[0] += 1
        tally[1] += found
        if count_messages(plan.messages) + plan.budget.output_reserve > budget:
            totals.budget_violations += 1
    totals.questions += asked
    totals.evidence_complete += complete
    totals.per_conversation.append(
        {"id": session_id, "requests": totals.requests - first, "questions": asked, "evidence_complete": complete}
    )


def main(
    *, dataset: Path, budget: int, json_output: bool, limit: int | None = None, conversations: str | None = None
) -> int:
    result, totals = run(dataset, budget, limit, conversations)
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"ctxgate bench context: {dataset.name}, budget {budget} tokens")
    for key, value in result.items():
        print(f"  {key:<28}{value}")
    print(f"  {'(requests)':<28}{totals.requests}")
    print(f"  {'(compactions)':<28}{totals.compactions}")
    print(f"  {'(recalled tokens, replay)':<28}{totals.recalled_tokens}")
    for row in totals.per_conversation:
        print(f"    {row['id']}: {row['requests']} requests, evidence {row['evidence_complete']}/{row['questions']}")
    return 0
