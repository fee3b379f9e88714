"""``ctxgate bench recall``: how well the ranking alone finds LoCoMo's evidence, with every turn evicted.

``bench context`` measures the whole engine, where a question's recall room depends on the summaries and the
verbatim window, and a relevance gate may recall nothing. This benchmark isolates the ranking (the issue 13
protocol): each conversation's turns are indexed as one evicted shard (the real ``build_shard``, with MiniLM
embeddings unless ``--embeddings none``), every question of categories 1-4 is ranked by the engine's ``Ranker``
the day after the last session, and the ranked turns are packed, exactly as a recall block renders them, into
``--room`` tokens. It reports:

- ``evidence_packed``: the share of questions with all their evidence packed (overall, by category and by
  conversation);
- ``evidence_within_rank``: the share with all their evidence in the top 20 / 50 / 100 ranked turns, the ceiling
  of a re-ranker over that many candidates;
- ``recall_tokens_for_all_evidence``: percentiles of the recall tokens, in rank order, that packing all of a
  question's evidence takes (``null`` when a percentile's questions never rank all of it);
- ``below_question_gate``: the share of questions whose best turn is under the question gate
  (``CTXGATE_RECALL_MIN_RELEVANCE_QUESTION``), which recall nothing in ``bench context``.

``--rerank-model`` adds the optional Bedrock re-rank stage (real Bedrock: it needs AWS credentials and model
access) over the best ``--rerank-candidates`` turns, so the re-ranker's gain can be measured where Bedrock is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.context import CATEGORIES, _content, select, session_keys, turn_times

if TYPE_CHECKING:
    from ctxgate.context.ranking import Reranker

RANK_CUTS = (20, 50, 100)
PERCENTILES = (50, 80, 85, 90)


def conversation_turns(conversation: dict[str, Any]) -> tuple[list[Any], dict[str, int]]:
    """Every turn of the conversation as a stored ``Turn`` (speaker_a as the user), and dia_id -> seq."""
    from ctxgate.messages import Message
    from ctxgate.sessions.models import Turn
    from ctxgate.tokens import count_message

    conv = conversation["conversation"]
    times = turn_times(conversation)
    turns: list[Turn] = []
    seq_of: dict[str, int] = {}
    for key in session_keys(conv):
        for raw in conv[key]:
            role = "user" if raw["speaker"] == conv["speaker_a"] else "assistant"
            message = Message(role=role, name=raw["speaker"], content=_content(raw))
            seq = len(turns) + 1
            seq_of[raw["dia_id"]] = seq
            turns.append(Turn(seq=seq, message=message, created_at=times[raw["dia_id"]], tokens=count_message(message)))
    return turns, seq_of


def packing_costs(ranked: list[Any]) -> list[int]:
    """The recall tokens used once each ranked turn is packed, in rank order (``pack_recalled``'s line costs)."""
    from ctxgate.context.assemble import recalled_line_cost
    from ctxgate.context.quoting import recalled_message
    from ctxgate.context.recall import day_line
    from ctxgate.tokens import count_message

    used = count_message(recalled_message([]))
    days: set[str | None] = set()
    costs = []
    for scored in ranked:
        used += recalled_line_cost(scored.doc, days)
        days.add(day_line(scored.doc))
        costs.append(used)
    return costs


def run(
    dataset: Path,
    room: int,
    embeddings: str,
    conversations_arg: str | None,
    reranker: Reranker | None = None,
    rerank_candidates: int = 50,
) -> dict[str, Any]:
    from ctxgate.context.assemble import pack_recalled
    from ctxgate.context.config import LazyEmbedder
    from ctxgate.context.ranking import Ranker
    from ctxgate.context.recall import build_shard
    from ctxgate.settings import get_settings

    started = time.perf_counter()
    gate = get_settings().recall_min_relevance_question
    embedder = None if embeddings == "none" else LazyEmbedder(embeddings)
    ranker = Ranker(embedder, reranker, rerank_candidates)
    conversations = select(json.loads(dataset.read_text()), None, conversations_arg)
    packed_by_category: dict[str, list[int]] = {}
    per_conversation = []
    within = dict.fromkeys(RANK_CUTS, 0)
    needed: list[float] = []
    below_gate = 0
    for conversation in conversations:
        turns, seq_of = conversation_turns(conversation)
        shards = [build_shard(turns, embedder=embedder)] if turns else []
        now = max((t.created_at for t in turns), default=0.0) + 86400  # the questions come the day after
        asked = packed = 0
        for qa in conversation["qa"]:
            if qa["category"] not in CATEGORIES:
                continue
            evidence = {seq_of.get(e.strip(), -1) for ref in qa["evidence"] for e in str(ref).split(";") if e.strip()}
            ranked = ranker.rank(shards, str(qa["question"]), now)
            chosen = {d.seq for d in pack_recalled(ranked, room, 0.0, set())}
            found = bool(evidence) and evidence <= chosen
            position = {s.doc.seq: i for i, s in enumerate(ranked)}
            last = max((position.get(e, len(turns) + 1) for e in evidence), default=len(turns) + 1)
            for cut in RANK_CUTS:
                within[cut] += bool(evidence) and last < cut
            costs = packing_costs(ranked)
            needed.append(costs[last] if evidence and last < len(costs) else float("inf"))
            below_gate += max((s.relevance for s in ranked), default=0.0) < gate
            asked += 1
            packed += found
            tally = packed_by_category.setdefault(CATEGORIES[qa["category"]], [0, 0])
            tally[0] += 1
            tally[1] += found
        per_conversation.append({"id": conversation["sample_id"], "questions": asked, "evidence_packed": packed})
    questions = sum(row["questions"] for row in per_conversation)
    needed.sort()

    def percentile(p: int) -> int | None:
        if not needed:
            return None
        value = needed[max(0, -(-p * len(needed) // 100) - 1)]  # nearest rank: the ceil(p% * n)-th smallest
        return None if value == float("inf") else int(value)

    return {
        "conversations": len(conversations),
        "questions": questions,
        "room_tokens": room,
        "embeddings": embeddings,
        "rerank_candidates": rerank_candidates if reranker is not None else None,
        "evidence_packed": round(sum(r["evidence_packed"] for r in per_conversation) / max(1, questions), 4),
        "evidence_packed_by_category": {
            name: round(packed_by_category[name][1] / max(1, packed_by_category[name][0]), 4)
            for name in CATEGORIES.values()
            if name in packed_by_category
        },
        "evidence_packed_by_conversation": per_conversation,
        "evidence_within_rank": {str(cut): round(count / max(1, questions), 4) for cut, count in within.items()},
        "recall_tokens_for_all_evidence": {f"p{p}": percentile(p) for p in PERCENTILES},
        "question_gate": gate,
        "below_question_gate": round(below_gate / max(1, questions), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(
    *,
    dataset: Path,
    room: int,
    embeddings: str,
    conversations: str | None,
    json_output: bool,
    rerank_model: str | None = None,
    rerank_candidates: int = 50,
) -> int:
    reranker = None
    if rerank_model:
        from ctxgate.adapters.bedrock_rerank import BedrockReranker

        reranker = BedrockReranker(rerank_model)
    result = run(dataset, room, embeddings, conversations, reranker, rerank_candidates)
    result["rerank_model"] = rerank_model
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"ctxgate bench recall: {dataset.name}, every turn evicted, {room} recall tokens")
    for key, value in result.items():
        if key != "evidence_packed_by_conversation":
            print(f"  {key:<32}{value}")
    for row in result["evidence_packed_by_conversation"]:
        print(f"    {row['id']}: evidence packed {row['evidence_packed']}/{row['questions']}")
    return 0
