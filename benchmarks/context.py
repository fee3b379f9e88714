"""``ctxgate bench context``: replay LoCoMo conversations through the real context engine, then ask the questions.

Protocol (issue 3): a fixed ~1,500-token system prompt; each conversation replayed in order with ``speaker_a`` as
the user and ``speaker_b`` as the assistant. Every run of ``speaker_a`` turns is one request whose assembled
context is measured; the following ``speaker_b`` turn is what the (scripted) model replies, so it is stored as
the assistant's turn. Two pinned constraints are added through the pins API, before turn 1 and at the middle.
Compaction goes through the real SQS queue and consumer handler (moto), drained after every request as Lambda
would. After the replay, every question whose category is not 5 is assembled as the next user message and its
evidence turns are looked for, verbatim, in the plan.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
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


def _content(turn: dict[str, Any]) -> str:
    text = turn["text"]
    if turn.get("blip_caption"):
        text += f" [shares a photo: {turn['blip_caption']}]"
    return text


def requests_of(conversation: dict[str, Any]) -> list[Request]:
    """Group a conversation into requests: a run of speaker_a turns (after any unanswered speaker_b turns, sent
    along as assistant messages) and the speaker_b turn that answers it."""
    conv = conversation["conversation"]
    keys = sorted((k for k in conv if re.fullmatch(r"session_\d+", k)), key=lambda k: int(k.split("_")[1]))
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


def run(dataset: Path, budget: int, limit: int | None = None) -> dict[str, Any]:
    from benchmarks.local_aws import local_aws

    started = time.perf_counter()
    conversations = json.loads(dataset.read_text())[:limit]
    gates = {
        k: os.environ[k]
        for k in ("CTXGATE_RECALL_MIN_RELEVANCE", "CTXGATE_RECALL_MIN_RELEVANCE_QUESTION")
        if k in os.environ
    }
    with local_aws(**gates) as stack:
        totals = _replay_all(conversations, budget, stack)
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
        "seconds": round(time.perf_counter() - started, 1),
    }, totals


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
    sessions = build_sessions(service)
    for conversation in conversations:
        _replay(conversation, budget, service, sessions, scripted, stack, consumer, session.client("sqs"), totals)
    return totals


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
) -> None:
    from ctxgate.auth.models import Caller
    from ctxgate.chat.models import ChatRequest
    from ctxgate.messages import GenerationParams, Message
    from ctxgate.tokens import REPLY_PRIMING_TOKENS, count_message, count_messages
    from ctxgate_local.sqs_delivery import deliver_once

    session_id = conversation["sample_id"]
    user, assistant = conversation["conversation"]["speaker_a"], conversation["conversation"]["speaker_b"]
    requests = requests_of(conversation)
    seq_of: dict[str, int] = {}
    content_of: dict[str, str] = {}
    cache = PrefixCache()
    pins: list[str] = []
    transcript_tokens = count_message(Message(role="system", content=SYSTEM_PROMPT)) + REPLY_PRIMING_TOKENS
    first = totals.requests
    for number, request in enumerate(requests):
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
        turn = ChatRequest(model=MODEL, messages=new, params=GenerationParams(), budget_tokens=budget)
        outcome = service.stateful(Caller(TENANT), session_id, turn)
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
        totals.recalled_tokens += sum(s.tokens for s in plan.sections if s.name == "recalled")
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
    for qa in conversation["qa"]:
        if qa["category"] == 5:
            continue
        plan = sessions.inspect(TENANT, session_id, str(qa["question"]), MODEL)
        present = set(plan.included) | set(plan.recalled)
        rendered = "\n".join(m.text() for m in plan.messages)
        evidence = [e.strip() for ref in qa["evidence"] for e in str(ref).split(";") if e.strip()]
        asked += 1
        if evidence and all(e in seq_of and seq_of[e] in present and content_of[e] in rendered for e in evidence):
            complete += 1
        if count_messages(plan.messages) + plan.budget.output_reserve > budget:
            totals.budget_violations += 1
    totals.questions += asked
    totals.evidence_complete += complete
    totals.per_conversation.append(
        {"id": session_id, "requests": totals.requests - first, "questions": asked, "evidence_complete": complete}
    )


def main(*, dataset: Path, budget: int, json_output: bool, limit: int | None = None) -> int:
    result, totals = run(dataset, budget, limit)
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
