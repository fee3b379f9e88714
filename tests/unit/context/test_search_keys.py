"""Search keys from the summariser: written with the summary of an evicted chunk, stored in its shard, searched."""

from __future__ import annotations

import json
import random

import httpx
import respx
from ctxgate.auth.models import Caller
from ctxgate.bootstrap import build_sessions
from ctxgate.chat.models import ChatRequest
from ctxgate.context.summarize import Summarizer, parse_keyed_summary
from ctxgate.messages import GenerationParams, Message
from ctxgate.providers.registry import ModelConfig, ModelRouter, ModelsFile
from ctxgate.retry import RetryPolicy

from tests.fakes import ListQueue, MemoryStore, chat_service

BASE = "http://model.test/v1"


def router() -> ModelRouter:
    models = ModelsFile(models=[ModelConfig(name="m", provider="openai", upstream_model="x", base_url=BASE)])
    return ModelRouter(models, RetryPolicy(max_attempts=1), sleep=lambda s: None)


def reply(text: str) -> httpx.Response:
    choice = {"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return httpx.Response(200, json={"choices": [choice]})


def test_keys_are_parsed_for_the_chunk_turns_only():
    text = "- Ana's sister got a job.\n\nSEARCH KEYS\n3: sister Jana, nurse, new job\nturn 4: clinic\n99: stray"
    summary, keys = parse_keyed_summary(text, {3, 4})
    assert summary == "- Ana's sister got a job."
    assert keys == {3: ["sister Jana", "nurse", "new job"], 4: ["clinic"]}


def test_the_extractive_fallback_writes_no_keys():
    summary, keys = Summarizer(None).summarise_turns([(1, ("Ana", "My sister got a job at the clinic."))], 40)
    assert "sister" in summary and keys == {}


@respx.mock
def test_keys_written_at_compaction_let_recall_find_a_turn_by_a_word_it_lacks():
    # GIVEN a model that summarises evicted chunks with search keys, naming Jana for the turn that only says "She"
    def answer(request: httpx.Request) -> httpx.Response:
        messages = json.loads(request.content)["messages"]
        if "SEARCH KEYS" not in messages[0]["content"]:
            return reply("ok")
        transcript = messages[-1]["content"]
        keyed, turn = [], ""
        for line in transcript.splitlines():  # "[turn N] speaker: first line", then the turn's quoted "> " lines
            if line.startswith("[turn "):
                turn = line.split("]")[0].removeprefix("[turn ")
            if "clinic" in line:
                keyed.append(turn)
        return reply(
            "- Ana talked about family.\nSEARCH KEYS\n" + "\n".join(f"{s}: Jana, sister, nurse" for s in keyed)
        )

    respx.post(f"{BASE}/chat/completions").mock(side_effect=answer)
    store, queue = MemoryStore(), ListQueue()
    service = chat_service(store, router(), budget=1024, queue=queue)
    rng = random.Random(1)

    def send(text: str) -> None:
        service.stateful(Caller("t"), "s", ChatRequest("m", [Message(role="user", content=text)], GenerationParams()))
        while queue.jobs:
            service.engine.compactor.run(queue.jobs.pop(0))

    # WHEN the turn is evicted behind enough chatter
    send("She starts on Monday at the clinic, night shifts.")
    for i in range(40):
        send(f"Chatter {i}: " + " ".join(rng.choice(["garden", "train", "novel", "river"]) for _ in range(30)))

    # THEN its shard carries the keys, and a question using only a key's word recalls it
    docs = [d for shard in store.shards.values() for d in shard.docs]
    assert next(d for d in docs if "clinic" in d.text).keys == ["Jana", "sister", "nurse"]
    plan = build_sessions(service).inspect("t", "s", "What does Jana do?", "m")
    assert 1 in plan.recalled
