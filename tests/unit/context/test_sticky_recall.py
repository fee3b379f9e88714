"""Sticky recall: a message's recalled turns stay right before it, in the cached prefix, until the next compaction."""

from __future__ import annotations

import itertools
import random

from ctxgate.auth.models import Caller
from ctxgate.chat.models import ChatRequest
from ctxgate.context.models import ContextConfig
from ctxgate.messages import GenerationParams, Message
from ctxgate.tokens import count_messages

from tests.fakes import ListQueue, MemoryStore, chat_service

FACTS = [
    "My sister Ingrid lives in Trondheim and keeps bees.",
    "Our dog Pixel learned to open the fridge.",
    "I sold my old Volvo to a collector in Bergen.",
]
QUESTIONS = ["Where does Ingrid keep her bees?", "What did Pixel learn?", "Who bought my Volvo?"]


def session(config: ContextConfig, budget: int = 2048):
    store, queue = MemoryStore(), ListQueue()
    service = chat_service(store, budget=budget, queue=queue, config=config)
    plans = []

    def send(text: str):
        outcome = service.stateful(
            Caller("t"), "s", ChatRequest("echo", [Message(role="user", content=text)], GenerationParams())
        )
        plans.append(outcome.plan)
        while queue.jobs:
            service.engine.compactor.run(queue.jobs.pop(0))
        return outcome.plan

    rng = random.Random(7)
    for fact in FACTS:
        send(fact)
    for i in range(50):
        send(f"Chatter {i}: " + " ".join(rng.choice(["garden", "train", "novel", "river", "cake"]) for _ in range(25)))
    return send, plans


def prefix(plan) -> list[str]:
    return [
        m.model_dump_json()
        for s in plan.sections
        if s.name in ("system", "pins", "summaries", "recent")
        for m in s.messages
    ]


def test_a_recalled_block_stays_in_the_prefix_until_the_next_compaction():
    # GIVEN a session whose facts were evicted, with sticky recall on
    send, plans = session(ContextConfig(sticky_recall=True))
    # WHEN questions recall them, then chatter follows
    asked = [send(q) for q in QUESTIONS]
    follow = send("Nice, thanks.")
    # THEN each question's plan (with its fresh recall block) is a prefix of the next plan, while no compaction
    sequence = [*asked, follow]
    checked = 0
    for before, after in itertools.pairwise(sequence):
        if before.summarised != after.summarised:
            continue
        sent = [m.model_dump_json() for m in before.messages[:-1]]  # all but the new message: it is stored as a turn
        assert prefix(after)[: len(sent)] == sent
        checked += 1
    assert checked >= 2
    assert all(p.budget.used_tokens <= p.budget.input_budget for p in plans)
    assert any(q.recalled for q in asked)


def test_without_sticky_recall_a_block_is_dropped_by_the_next_message():
    send, _ = session(ContextConfig(sticky_recall=False))
    question = send(QUESTIONS[0])
    follow = send("Nice, thanks.")
    assert question.recalled and not follow.recalled
    assert "keeps bees" not in "\n".join(m.text() for m in follow.messages)


def test_a_question_may_borrow_the_verbatim_window_but_never_the_budget():
    send, _plans = session(ContextConfig(recall_share=0.05, question_borrows_verbatim=True))
    plan = send(QUESTIONS[0])
    assert plan.budget.recall_budget > plan.budget.input_budget * 0.05
    assert count_messages(plan.messages) <= plan.budget.input_budget
