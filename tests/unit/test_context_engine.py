"""The context engine's invariants, on the in-memory store (no AWS)."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from ctxgate.auth.models import Caller
from ctxgate.bootstrap import build_sessions
from ctxgate.chat.models import ChatRequest
from ctxgate.context.assemble import ContextBudgetExceeded, ContextState, assemble_context, plan_eviction
from ctxgate.context.models import ContextConfig
from ctxgate.messages import FunctionCall, GenerationParams, Message, ToolCall
from ctxgate.sessions.models import Turn
from ctxgate.tokens import count_message, count_messages

from tests.fakes import ListQueue, MemoryStore, chat_service

SYSTEM = "You are a careful assistant. " * 20


class Harness:
    """A session driven through the real ChatService, with queued compactions run as the consumer would."""

    def __init__(self, budget: int = 1024, drain: bool = True) -> None:
        self.store = MemoryStore()
        self.queue = ListQueue()
        self.service = chat_service(self.store, budget=budget, queue=self.queue)
        self.engine = self.service.engine
        self.sessions = build_sessions(self.service)
        self.drain = drain
        self.plans = []
        self.compactions = 0

    def send(self, *messages: Message, budget: int | None = None, session: str = "s"):
        outcome = self.service.stateful(
            Caller("t"),
            session,
            ChatRequest(
                "echo",
                list(messages),
                GenerationParams(),
                pins=[m.text() for m in messages if m.name == "pin"],
                budget_tokens=budget,
            ),
        )
        self.plans.append(outcome.plan)
        if self.drain:
            while self.queue.jobs:
                result = self.engine.compactor.run(self.queue.jobs.pop(0))
                self.compactions += result.status == "compacted"
        return outcome


def user(text: str) -> Message:
    return Message(role="user", content=text)


def chatter(i: int, rng: random.Random) -> str:
    words = ["garden", "recipe", "weekend", "concert", "project", "puppy", "river", "museum", "train", "novel"]
    return f"Message {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(3, 40)))


def test_pins_survive_500_turns_and_the_echo_counts_what_was_sent():
    rng = random.Random(1)
    harness = Harness(budget=1024)
    harness.send(Message(role="system", content="Be brief."), user("Remember: my daughter is allergic to peanuts."))
    harness.sessions.add_pin("t", "s", "The user's daughter is allergic to peanuts.")
    harness.send(Message(role="user", name="pin", content="Always answer in metric units."))
    for i in range(248):
        outcome = harness.send(user(chatter(i, rng)))
        plan = outcome.plan
        pins = "\n".join(m.text() for s in plan.sections if s.name == "pins" for m in s.messages)
        assert "allergic to peanuts" in pins and "metric units" in pins
        assert outcome.completion.message.content.startswith(f"[echo] received {len(plan.messages)} messages")
    assert harness.store.meta[("t", "s")].last_seq == 500
    assert harness.compactions > 10  # the history really was evicted, many times


def test_budget_is_never_exceeded_and_evicted_turns_are_kept():
    rng = random.Random(2)
    harness = Harness(budget=768, drain=False)  # no consumer: every overflow must compact synchronously
    for i in range(120):
        outcome = harness.send(user(chatter(i, rng) * rng.randint(1, 3)))
        plan = outcome.plan
        assert count_messages(plan.messages) + plan.budget.output_reserve <= 768
        assert plan.budget.used_tokens == count_messages(plan.messages)
    assert len(harness.store.rows[("t", "s")]) == 240  # eviction summarises; it never deletes
    assert harness.store.meta[("t", "s")].evicted_through > 0


def test_prefix_is_byte_identical_between_compactions():
    rng = random.Random(3)
    harness = Harness(budget=2048)
    harness.send(Message(role="system", content=SYSTEM), user("hello"))
    harness.sessions.add_pin("t", "s", "Never book flights before 9am.")
    for i in range(80):
        harness.send(user(chatter(i, rng)))
    stable = ("system", "pins", "summaries", "recent")
    checked = 0
    for before, after in zip(harness.plans, harness.plans[1:], strict=False):
        if before.summarised != after.summarised or not before.sections[1].messages:
            continue  # a compaction (or the first pin) happened in between: the prefix may change there only
        prefix = [m.model_dump_json() for s in before.sections if s.name in stable for m in s.messages]
        later = [m.model_dump_json() for s in after.sections if s.name in stable for m in s.messages]
        assert later[: len(prefix)] == prefix
        checked += 1
    assert checked > 40


def test_summaries_are_append_only_between_consolidations():
    rng = random.Random(4)
    harness = Harness(budget=1024)
    for i in range(150):
        harness.send(user(chatter(i, rng)))
    ranges = [p.summarised for p in harness.plans]
    for before, after in itertools.pairwise(ranges):
        if after[: len(before)] != before:  # a consolidation folds the oldest epochs into one
            assert after[0][0] == 1 and after[0][1] >= before[0][1]
    final = harness.plans[-1]
    covered = [seq for first, last in final.summarised for seq in range(first, last + 1)]
    assert covered == list(range(1, len(covered) + 1))
    summary_tokens = sum(s.tokens for s in final.sections if s.name == "summaries")
    assert summary_tokens <= final.budget.input_budget * ContextConfig().summary_share


def turn(seq: int, message: Message) -> Turn:
    return Turn(seq=seq, message=message, created_at=0, tokens=count_message(message))


def tool_history() -> list[Turn]:
    messages: list[Message] = []
    for i in range(6):
        messages.append(user(f"question {i} " + "words " * 20))
        call = ToolCall(id=f"c{i}", function=FunctionCall(name="lookup", arguments=json.dumps({"i": i})))
        messages.append(Message(role="assistant", tool_calls=[call, call.model_copy(update={"id": f"d{i}"})]))
        messages.append(Message(role="tool", tool_call_id=f"c{i}", content="result " * 15))
        messages.append(Message(role="tool", tool_call_id=f"d{i}", content="other " * 15))
        messages.append(Message(role="assistant", content=f"answer {i}"))
    return [turn(seq, m) for seq, m in enumerate(messages, start=1)]


@pytest.mark.parametrize("low_water", [0, 50, 120, 200, 300, 450, 10_000])
def test_eviction_never_splits_a_tool_call_from_its_results(low_water):
    history = tool_history()
    cut = plan_eviction(history, low_water)
    kept = [t for t in history if cut is None or t.seq > cut]
    if kept:
        assert kept[0].message.role == "user"
    ids_kept = {c.id for t in kept if t.message.tool_calls for c in t.message.tool_calls}
    for t in kept:
        if t.message.role == "tool":
            assert t.message.tool_call_id in ids_kept


def test_eviction_reaches_the_low_water_mark_in_one_chunk():
    history = tool_history()
    cut = plan_eviction(history, 200)
    assert cut is not None
    assert sum(t.tokens for t in history if t.seq > cut) <= 200
    assert plan_eviction(history, 10_000) is None


def test_pins_and_new_message_that_cannot_fit_are_a_4xx():
    state = ContextState("sys", [], [], [], 0, budget_tokens=300, output_reserve=37)
    with pytest.raises(ContextBudgetExceeded) as caught:
        assemble_context(state, [user("word " * 400)], ContextConfig())
    assert caught.value.status == 400 and caught.value.code == "context_budget_exceeded"


def test_a_pin_that_would_not_leave_room_is_refused():
    harness = Harness(budget=300)
    harness.send(user("hi"))
    with pytest.raises(ContextBudgetExceeded):
        harness.sessions.add_pin("t", "s", "constraint " * 400)


def test_an_evicted_fact_is_recalled_for_a_related_question_but_not_for_small_talk():
    rng = random.Random(5)
    harness = Harness(budget=1024)
    harness.send(user("By the way, my passport number is stored with the embassy in Lisbon, renewal due March 2031."))
    for i in range(60):
        harness.send(user(chatter(i, rng)))
    question = harness.sessions.inspect("t", "s", "When is my passport renewal due at the Lisbon embassy?")
    assert 1 in question.recalled
    recalled = next(s for s in question.sections if s.name == "recalled").messages[0].text()
    assert "renewal due March 2031" in recalled
    small_talk = harness.sessions.inspect("t", "s", "ok thanks")
    assert small_talk.recalled == []


def test_recalled_turns_come_after_the_stable_prefix():
    rng = random.Random(6)
    harness = Harness(budget=1024)
    harness.send(user("My sister Ingrid lives in Trondheim and keeps bees."))
    for i in range(60):
        harness.send(user(chatter(i, rng)))
    plan = harness.sessions.inspect("t", "s", "Where does Ingrid keep her bees?")
    names = [s.name for s in plan.sections]
    assert names == ["system", "pins", "summaries", "recent", "recalled", "new"]
    assert plan.recalled and all(b.section in ("system", "pins", "summaries", "recent") for b in plan.breakpoints)


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("When did Caroline go to the support group?", True),
        ("Did you finish the painting", True),
        ("remember the trip to Lisbon", True),
        ("so what did you think? I loved it", True),
        ("ok thanks", False),
        ("I went hiking with my dog yesterday.", False),
    ],
)
def test_questions_use_the_looser_recall_gate(text, asks):
    from ctxgate.context.recall import is_question

    assert is_question(text) is asks
    config = ContextConfig()
    assert config.recall_min_relevance_question < config.recall_min_relevance
