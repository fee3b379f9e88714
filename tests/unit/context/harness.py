"""A session driven through the real ChatService on the in-memory store, shared by the context tests."""

from __future__ import annotations

import random

from ctxgate.auth.models import Caller
from ctxgate.bootstrap import build_sessions
from ctxgate.chat.models import ChatRequest
from ctxgate.messages import GenerationParams, Message

from tests.fakes import ListQueue, MemoryStore, chat_service


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
