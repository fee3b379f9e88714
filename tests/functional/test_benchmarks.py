"""The benchmarks' --json contract: exactly one JSON object on stdout with exactly the documented keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTEXT_KEYS = {
    "recall_by_message_kind",
    "conversations",
    "questions",
    "evidence_recall",
    "cumulative_input_tokens",
    "full_resend_input_tokens",
    "cumulative_input_ratio",
    "prefix_cache_hit_ratio",
    "modeled_cost_ratio",
    "pins_retained",
    "budget_violations",
    "evidence_recall_by_category",
    "uncached_share_by_cause",
    "recall_p50_ms",
    "recall_p99_ms",
    "seconds",
}
CACHE_KEYS = {
    "pairs",
    "correct_hits",
    "wrong_hits",
    "misses",
    "precision",
    "hit_rate",
    "threshold",
    "lookup_p50_ms",
    "lookup_p99_ms",
    "seconds",
}

OVERHEAD_KEYS = {"requests", "gateway_idle_cpu_ms_per_second", "levels", "goal_ratio", "within_goal", "seconds"}
OVERHEAD_LEVEL_KEYS = {
    "clients",
    "requests",
    "direct_p50_ms",
    "direct_p99_ms",
    "gateway_p50_ms",
    "gateway_p99_ms",
    "added_p50_ms",
    "added_p99_ms",
    "gateway_cpu_ms_per_request",
    "gateway_cpu_ms_per_request_less_idle",
    "added_p50_to_cpu_ratio",
}


def bench(*args: str) -> dict:
    command = [str(Path(sys.executable).with_name("ctxgate")), "bench", *args, "--json"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=600).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"--json must print one JSON object, got {len(lines)} lines"
    return json.loads(lines[0])


def tiny_conversation(sample_id: str, length: int = 220) -> dict:
    """A tiny LoCoMo-format conversation (the real dataset is not part of the repository), with session dates."""
    turns = [
        {
            "speaker": "Ana" if i % 2 == 0 else "Ben",
            "dia_id": f"D1:{i + 1}",
            "text": f"Turn {i}: we talked about the {['lake', 'market', 'museum', 'train'][i % 4]} trip number {i}.",
        }
        for i in range(length)
    ]
    return {
        "sample_id": sample_id,
        "conversation": {
            "speaker_a": "Ana",
            "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": turns,
        },
        "qa": [
            {"question": "When did we talk about museum trip number 2?", "evidence": ["D1:3"], "category": 1},
            {"question": "unanswerable", "evidence": [], "category": 5},
        ],
    }


def test_context_benchmark_json(tmp_path):
    data = [tiny_conversation("tiny")]
    dataset = tmp_path / "tiny.json"
    dataset.write_text(json.dumps(data))
    result = bench("context", "--dataset", str(dataset), "--budget", "2048")
    assert set(result) == CONTEXT_KEYS
    assert result["conversations"] == 1 and result["questions"] == 1
    assert result["budget_violations"] == 0 and result["pins_retained"] == 1.0
    assert 0 < result["cumulative_input_ratio"] < 1
    assert set(result["evidence_recall_by_category"]) == {"multi_hop"}
    assert set(result["uncached_share_by_cause"]) == {"steady", "after_compaction", "recall"}
    uncached = sum(result["uncached_share_by_cause"].values())
    assert abs(uncached - (1 - result["prefix_cache_hit_ratio"])) < 0.001
    assert result["uncached_share_by_cause"]["steady"] > 0  # every request sends a new message
    assert 0 < result["recall_p50_ms"] <= result["recall_p99_ms"]
    kinds = result["recall_by_message_kind"]
    assert set(kinds) == {"question", "statement"}
    assert kinds["question"]["requests"] == 0  # the tiny conversation's replayed messages ask nothing
    assert kinds["statement"]["requests"] > 0
    assert kinds["statement"]["with_recall"] <= kinds["statement"]["requests"]


def test_context_benchmark_replays_only_the_chosen_conversations(tmp_path):
    data = [tiny_conversation(f"c{i}", length=40) for i in range(3)]
    dataset = tmp_path / "three.json"
    dataset.write_text(json.dumps(data))
    result = bench("context", "--dataset", str(dataset), "--budget", "2048", "--conversations", "1-2")
    assert result["conversations"] == 2 and result["questions"] == 2


RECALL_KEYS = {
    "conversations",
    "questions",
    "room_tokens",
    "embeddings",
    "rerank_candidates",
    "evidence_packed",
    "evidence_packed_by_category",
    "evidence_packed_by_conversation",
    "evidence_within_rank",
    "recall_tokens_for_all_evidence",
    "question_gate",
    "below_question_gate",
    "seconds",
    "rerank_model",
}


def test_recall_benchmark_json(tmp_path):
    # GIVEN two tiny conversations whose one question names its evidence turn's words
    dataset = tmp_path / "two.json"
    dataset.write_text(json.dumps([tiny_conversation("a", length=60), tiny_conversation("b", length=60)]))
    # WHEN the ranking alone is measured with every turn evicted
    result = bench("recall", "--dataset", str(dataset), "--embeddings", "none", "--conversations", "1")
    # THEN one JSON object with the documented keys, for the chosen conversation only, and the evidence is found
    assert set(result) == RECALL_KEYS
    assert result["conversations"] == 1 and result["questions"] == 1
    assert result["evidence_packed_by_conversation"] == [{"id": "b", "questions": 1, "evidence_packed": 1}]
    assert result["evidence_packed"] == 1.0 and result["evidence_packed_by_category"] == {"multi_hop": 1.0}
    assert result["evidence_within_rank"] == {"20": 1.0, "50": 1.0, "100": 1.0}
    assert 0 < result["recall_tokens_for_all_evidence"]["p50"] <= result["room_tokens"]
    assert result["rerank_model"] is None and result["rerank_candidates"] is None


def test_recall_benchmark_applies_the_rerank_stage(tmp_path):
    from benchmarks.recall import run

    # GIVEN a conversation whose evidence turn the fused ranking puts first, and room for only a few turns
    dataset = tmp_path / "one.json"
    dataset.write_text(json.dumps([tiny_conversation("a", length=60)]))
    plain = run(dataset, room=80, embeddings="none", conversations_arg=None)
    assert plain["evidence_packed"] == 1.0

    # WHEN a re-ranker that likes the evidence turn least reorders every candidate
    def dislikes_evidence(query: str, texts: list[str]) -> list[float]:
        return [0.0 if "trip number 2." in t else 1.0 for t in texts]

    reranked = run(
        dataset, room=80, embeddings="none", conversations_arg=None, reranker=dislikes_evidence, rerank_candidates=100
    )
    # THEN its order is the one packed: the evidence no longer fits
    assert reranked["evidence_packed"] == 0.0 and reranked["rerank_candidates"] == 100
    assert reranked["evidence_within_rank"]["50"] == 0.0


def test_cache_benchmark_json(tmp_path):
    pairs = [
        {"origin": "How do I open a savings account?", "similar": "How can I open a savings account?"},
        {"origin": "What is the capital of France?", "similar": "Which city is the capital of France?"},
        {"origin": "Convert 100 USD to EUR", "similar": "Convert 250 USD to EUR"},
    ]
    dataset = tmp_path / "pairs.json"
    dataset.write_text(json.dumps(pairs))
    result = bench("cache", "--dataset", str(dataset))
    assert set(result) == CACHE_KEYS
    assert result["pairs"] == 3 and result["wrong_hits"] == 0 and result["correct_hits"] >= 1


def test_overhead_benchmark_json():
    # GIVEN a tiny request count at one and at two concurrent clients
    # WHEN the benchmark runs the real `ctxgate local` in front of its mock upstream
    result = bench("overhead", "--requests", "6", "--clients", "1", "2")
    # THEN it prints one JSON object with the documented keys and one row per concurrency level,
    # each counting exactly the requests that went through the gateway
    assert set(result) == OVERHEAD_KEYS
    assert [level["clients"] for level in result["levels"]] == [1, 2]
    assert all(set(level) == OVERHEAD_LEVEL_KEYS for level in result["levels"])
    assert all(level["requests"] == 6 for level in result["levels"])


def test_cache_bound_benchmark_json():
    row = bench("cache-bound", "--entries", "12", "--bound", "10", "--response-bytes", "500")
    assert set(row) == {
        "entries_written",
        "bound",
        "entries_stored",
        "entries_loaded",
        "memory_bytes_per_entry",
        "scope_memory_bytes",
        "response_bytes_not_held_per_entry",
        "requests_per_put_at_bound",
        "hit_fetch_p50_ms",
        "seconds",
    }
    assert row["entries_stored"] == row["entries_loaded"] == 10


STREAM_MODE_KEYS = {
    "ttft_p50_ms",
    "ttft_p99_ms",
    "gap_p50_ms",
    "gap_p99_ms",
    "total_p50_ms",
    "chunks_per_request",
    "separate_arrivals",
    "complete",
}


def test_stream_benchmark_json():
    # GIVEN a tiny run: two requests per mode, an upstream streaming five chunks
    # WHEN the benchmark runs the real `ctxgate local` in front of its streaming upstream
    result = bench("stream", "--requests", "2", "--chunks", "5", "--interval-ms", "5")
    # THEN one JSON object: every mode received every chunk, the gateway modes carry their CPU, both checks are there
    assert set(result) == {
        "requests",
        "chunks",
        "interval_ms",
        "gateway_idle_cpu_ms_per_second",
        "modes",
        "checks",
        "all_met",
        "seconds",
    }
    assert set(result["modes"]) == {"direct", "stateless", "stateful"}
    assert set(result["modes"]["direct"]) == STREAM_MODE_KEYS
    assert all(
        set(result["modes"][m]) == STREAM_MODE_KEYS | {"cpu_ms_per_request_p50"} for m in ("stateless", "stateful")
    )
    assert all(mode["complete"] and mode["chunks_per_request"] == 5 for mode in result["modes"].values())
    assert set(result["checks"]) == {"stateless", "stateful"}
