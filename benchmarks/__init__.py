"""Benchmarks behind ``ctxgate bench``. Each prints measured figures; none asserts a timing."""

from __future__ import annotations

import argparse


def run(args: argparse.Namespace) -> int:
    if args.bench == "coldstart":
        from benchmarks.coldstart import main

        return main(json_output=args.json, repeats=args.repeats)
    if args.bench == "context":
        import os

        from benchmarks.context import main as context_main

        if args.recall_min_relevance is not None:
            os.environ["CTXGATE_RECALL_MIN_RELEVANCE"] = str(args.recall_min_relevance)
        if args.recall_min_relevance_question is not None:
            os.environ["CTXGATE_RECALL_MIN_RELEVANCE_QUESTION"] = str(args.recall_min_relevance_question)
        if args.embeddings is not None:
            os.environ["CTXGATE_RECALL_EMBEDDINGS"] = args.embeddings
        if args.sticky_recall is not None:
            os.environ["CTXGATE_STICKY_RECALL"] = str(args.sticky_recall).lower()
        return context_main(
            dataset=args.dataset,
            budget=args.budget,
            json_output=args.json,
            limit=args.limit,
            conversations=args.conversations,
        )
    if args.bench == "recall":
        from benchmarks.recall import main as recall_main

        return recall_main(
            dataset=args.dataset,
            room=args.room,
            embeddings=args.embeddings,
            conversations=args.conversations,
            json_output=args.json,
            rerank_model=args.rerank_model,
            rerank_candidates=args.rerank_candidates,
        )
    if args.bench == "cache":
        from benchmarks.cache import main as cache_main

        return cache_main(dataset=args.dataset, threshold=args.threshold, sweep=args.sweep, json_output=args.json)
    if args.bench == "stream":
        from benchmarks.stream import main as stream_main

        return stream_main(
            json_output=args.json, requests=args.requests, chunks=args.chunks, interval_ms=args.interval_ms
        )
    if args.bench == "overhead":
        from benchmarks.overhead import main as overhead_main

        return overhead_main(json_output=args.json, requests=args.requests, clients=args.clients)
    if args.bench == "cache-bound":
        from benchmarks.cache_bound import main as bound_main

        return bound_main(
            entries=args.entries, bound=args.bound, response_bytes=args.response_bytes, json_output=args.json
        )
    if args.bench == "contention":
        from benchmarks.contention import main as contention_main

        return contention_main(
            writers=args.writers,
            sessions=args.sessions,
            turns=args.turns,
            fault_rate=args.fault_rate,
            seed=args.seed,
            json_output=args.json,
        )
    raise SystemExit(f"unknown benchmark {args.bench}")
