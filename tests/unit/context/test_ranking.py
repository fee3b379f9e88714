"""Ranking evicted turns: stemming, neighbour context, speakers, named periods, embedding fusion, re-ranking."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from ctxgate.context.ranking import Ranker
from ctxgate.context.recall import build_shard
from ctxgate.messages import Message
from ctxgate.sessions.models import Turn
from ctxgate.tokens import count_message

MAY, JULY = datetime(2023, 5, 8, tzinfo=UTC).timestamp(), datetime(2023, 7, 9, tzinfo=UTC).timestamp()
FILLER = [
    "The weather was fine and we stayed home.",
    "Work has been busy with meetings all week.",
    "We watched a movie on Sunday evening.",
    "My neighbour fixed his fence again.",
    "The bus was late this morning.",
    "I bought groceries after lunch.",
]


def turns(texts: list[tuple[str, str]], start: int = 1, at: float = MAY) -> list[Turn]:
    out = []
    for seq, (name, text) in enumerate(texts, start=start):
        message = Message(role="user" if name == "Ana" else "assistant", name=name, content=text)
        out.append(Turn(seq=seq, message=message, created_at=at + seq, tokens=count_message(message)))
    return out


def with_filler(*texts: tuple[str, str]) -> list[Turn]:
    return turns([*texts, *(("Ana" if i % 2 else "Ben", f) for i, f in enumerate(FILLER))])


def top(ranker: Ranker, history: list[Turn], query: str, now: float = JULY, **shard_args) -> int:
    return ranker.rank([build_shard(history, **shard_args)], query, now)[0].doc.seq


class ConceptEmbedder:
    """A tiny deterministic embedder: one dimension per concept (synonyms share one), and one all texts share."""

    name = "concepts-v1"
    concepts = (("guitar", "instrument", "music"), ("dog", "puppy", "pet"))

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            row = [float(any(w in text.lower() for w in group)) for group in self.concepts] + [0.2]
            rows.append(np.array(row, dtype=np.float32) / np.linalg.norm(row))
        return np.vstack(rows)


def test_stemming_meets_painting_at_painted():
    history = with_filler(("Ben", "I painted a sunrise over the lake."))
    assert top(Ranker(), history, "What was the painting about?") == 1


def test_a_turn_is_found_by_the_words_of_its_neighbour():
    history = with_filler(("Ana", "Did you finish the marathon?"), ("Ben", "Yes, in four hours and ten minutes!"))
    ranked = Ranker().rank([build_shard(history)], "How long did the marathon take?", JULY)
    assert {s.doc.seq for s in ranked[:2]} == {1, 2}


def test_turns_by_the_speaker_the_question_names_come_first():
    history = with_filler(("Ana", "I adopted a cat called Miso."), ("Ben", "I adopted a cat called Pepper."))
    assert top(Ranker(), history, "What cat did Ben adopt?") == 2


def test_turns_in_the_month_the_question_names_come_first():
    history = [
        *turns([("Ana", "We went hiking in the hills.")], at=MAY),
        *turns([(("Ana", "Ben")[i % 2], f) for i, f in enumerate(FILLER)], start=2, at=MAY),
        *turns([("Ana", "We went hiking in the hills.")], start=20, at=JULY),
    ]
    assert top(Ranker(), history, "Where did we go hiking in July 2023?") == 20
    assert top(Ranker(), history, "Where did we go hiking in May?") == 1


def test_fusion_finds_a_paraphrase_that_shares_no_word():
    history = with_filler(("Ben", "I finally bought a guitar and practise every night."))
    embedder = ConceptEmbedder()
    assert top(Ranker(embedder), history, "Which instrument does he play?", embedder=embedder) == 1
    assert Ranker().rank([build_shard(history)], "Which instrument does he play?", JULY) == []


def test_vectors_of_another_model_are_not_compared():
    history = with_filler(("Ben", "I finally bought a guitar and practise every night."))
    other = ConceptEmbedder()
    shard = build_shard(history, embedder=other).model_copy(update={"embedder": "another-model"})
    assert Ranker(ConceptEmbedder()).rank([shard], "Which instrument does he play?", JULY) == []


def test_search_keys_make_a_turn_findable_by_words_it_does_not_contain():
    history = with_filler(("Ben", "Yes! She starts on Monday at the clinic."))
    shard = build_shard(history, keys={1: ["sister Jana", "new job", "nurse"]})
    assert Ranker().rank([shard], "What job did Jana get?", JULY)[0].doc.seq == 1


def test_the_re_ranker_reorders_the_best_candidates():
    history = with_filler(("Ana", "The lake trip was cold."), ("Ben", "The lake was frozen, we skated on the lake."))
    seen: list[str] = []

    def rerank(query: str, texts: list[str]) -> list[float]:
        seen.append(query)
        return [1.0 if "cold" in t else 0.0 for t in texts]

    ranked = Ranker(reranker=rerank).rank([build_shard(history)], "lake", JULY)
    assert seen == ["lake"] and ranked[0].doc.seq == 1


def test_a_failing_re_ranker_keeps_the_fused_order():
    history = with_filler(("Ana", "The lake trip was cold."), ("Ben", "The lake was frozen, we skated on the lake."))

    def broken(query: str, texts: list[str]) -> list[float]:
        raise TimeoutError("upstream")

    fused = Ranker().rank([build_shard(history)], "lake", JULY)
    assert [s.doc.seq for s in Ranker(reranker=broken).rank([build_shard(history)], "lake", JULY)] == [
        s.doc.seq for s in fused
    ]


def test_the_shard_keeps_time_keys_and_a_compact_embedding():
    history = with_filler(("Ben", "I finally bought a guitar."))
    shard = build_shard(history, embedder=ConceptEmbedder(), keys={1: ["music"]})
    doc = shard.docs[0]
    assert doc.created_at == history[0].created_at and doc.keys == ["music"]
    assert shard.embedder == "concepts-v1" and len(doc.embedding or "") == 8  # 3 float16, base64
