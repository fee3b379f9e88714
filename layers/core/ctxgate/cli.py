"""The ``ctxgate`` command: ``ctxgate local`` (the local gateway), ``ctxgate keys ...`` (API keys),
``ctxgate usage`` (a tenant's usage and cost) and ``ctxgate bench ...`` (benchmarks).

Each front-end imports its implementation lazily; none is used inside Lambda.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _local(args: argparse.Namespace) -> int:
    from ctxgate_local.runtime import start

    if args.config is not None and not args.config.exists():
        print(f"ctxgate local: config file {args.config} not found", file=sys.stderr)
        return 2
    overrides = {}
    for item in args.parameter:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"ctxgate local: --parameter takes Key=Value, not {item!r}", file=sys.stderr)
            return 2
        overrides[key] = value
    from ctxgate.errors import CtxgateError

    api_keys = [(key, tenant or "local") for key, _, tenant in (item.partition(":") for item in args.api_key)]
    try:
        runtime = start(
            port=args.port,
            host=args.host,
            config=args.config,
            parameters=overrides,
            moto_port=args.aws_port,
            api_keys=api_keys,
        )
    except CtxgateError as error:  # a malformed --api-key or tenant
        print(f"ctxgate local: --api-key: {error.message}", file=sys.stderr)
        return 2
    except ValueError as error:  # e.g. AuthMode=jwt without JwtIssuer
        print(f"ctxgate local: {error}", file=sys.stderr)
        return 2
    from ctxgate.auth.keys import key_id_of
    from ctxgate.bootstrap import model_router

    try:
        models = model_router().names()
    except ValueError as error:
        runtime.stop()
        print(f"ctxgate local: {error}", file=sys.stderr)
        return 2
    print(f"ctxgate local gateway: {runtime.base_url}", flush=True)
    print(f"models: {', '.join(models)}", flush=True)
    print(f"aws endpoint: {runtime.aws_endpoint}", flush=True)
    print(f"api key (tenant local): {runtime.dev_key}", flush=True)
    for key, tenant in api_keys:
        print(f"registered key for tenant {tenant}: {key_id_of(key)}", flush=True)
    try:
        _stop_on_signals()  # inside the try: a signal from here on is a clean stop
        print("Ctrl-C stops it.", flush=True)
        runtime.serve_forever()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        busy = runtime.stop()
    if busy:  # see LocalRuntime.stop: end now, without finalising around threads still in native code
        print(f"stopped; abandoned deliveries in progress on {', '.join(busy)}", flush=True)
        sys.stderr.flush()
        os._exit(0)
    return 0


def _stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM both stop the local gateway cleanly. SIGINT's handler is installed explicitly:
    a process started in the background by a non-interactive shell (``cmd &`` in a CI script) inherits SIGINT
    ignored, and Python then never raises KeyboardInterrupt, so Ctrl-C from a test harness did nothing."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)


def _bench(args: argparse.Namespace) -> int:
    from benchmarks import run

    return run(args)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="ctxgate", description="ctxgate: a serverless LLM gateway for AWS")
    commands = root.add_subparsers(dest="command", required=True)
    local = commands.add_parser("local", help="run the gateway locally on moto (the Lambda handlers in-process)")
    local.add_argument("--port", type=int, default=8787)
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--config", type=Path, default=None, help="models YAML file (default: only the echo model)")
    local.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a template parameter, e.g. ToolAllowedHosts=127.0.0.1 (repeatable)",
    )
    local.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY[:TENANT]",
        help="also accept this key, for TENANT (default: local); repeatable",
    )
    local.add_argument("--aws-port", type=int, default=None, help="port of the local AWS endpoint (default: free)")
    local.set_defaults(func=_local)
    from ctxgate.keys_cli import add_parser as add_keys_parser

    add_keys_parser(commands)
    bench = commands.add_parser("bench", help="benchmarks that print measured figures")
    kinds = bench.add_subparsers(dest="bench", required=True)
    cold = kinds.add_parser("coldstart", help="import-and-init time of every handler vs a bare `import boto3`")
    cold.add_argument("--json", action="store_true")
    cold.add_argument("--repeats", type=int, default=7, help="fresh processes per module (the median is reported)")
    cold.set_defaults(func=_bench)
    context = kinds.add_parser("context", help="replay LoCoMo through the context engine and score the contexts")
    context.add_argument("--dataset", type=Path, required=True, help="a LoCoMo-format JSON file")
    context.add_argument("--budget", type=int, default=8192, help="the sessions' token budget")
    context.add_argument("--limit", type=int, default=None, help="replay only the first N conversations")
    context.add_argument(
        "--conversations",
        default=None,
        metavar="INDEXES",
        help='replay only these conversations of the dataset, e.g. "0-2" (tuning) or "3,4" (held out)',
    )
    context.add_argument(
        "--embeddings", choices=["local", "bedrock", "none"], default=None, help="override CTXGATE_RECALL_EMBEDDINGS"
    )
    context.add_argument(
        "--sticky-recall",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override CTXGATE_STICKY_RECALL (recalled turns stay in the cached prefix until the next compaction)",
    )
    context.add_argument(
        "--recall-min-relevance", type=float, default=None, help="override CTXGATE_RECALL_MIN_RELEVANCE (statements)"
    )
    context.add_argument(
        "--recall-min-relevance-question",
        type=float,
        default=None,
        help="override CTXGATE_RECALL_MIN_RELEVANCE_QUESTION (questions)",
    )
    context.add_argument("--json", action="store_true")
    context.set_defaults(func=_bench)
    recall = kinds.add_parser("recall", help="the ranking alone on LoCoMo: every turn evicted, evidence packed")
    recall.add_argument("--dataset", type=Path, required=True, help="a LoCoMo-format JSON file")
    recall.add_argument(
        "--room",
        type=int,
        default=1254,
        help="recall tokens each question is packed into (default 1254: the recall share of a 4,096-token budget)",
    )
    recall.add_argument("--embeddings", choices=["local", "none"], default="local", help="fuse MiniLM cosine or not")
    recall.add_argument(
        "--conversations", default=None, metavar="INDEXES", help='only these conversations, e.g. "0-2" or "3,4"'
    )
    recall.add_argument(
        "--rerank-model",
        default=None,
        help="also re-rank with this Bedrock model (real Bedrock), e.g. cohere.rerank-v3-5:0",
    )
    recall.add_argument("--rerank-candidates", type=int, default=50, help="candidates the re-ranker reorders")
    recall.add_argument("--json", action="store_true")
    recall.set_defaults(func=_bench)
    cache = kinds.add_parser("cache", help="GPTCache's similarity protocol through the response cache")
    cache.add_argument("--dataset", type=Path, required=True, help="a JSON list of {origin, similar} pairs")
    cache.add_argument("--threshold", type=float, default=None, help="semantic threshold (default: the setting)")
    cache.add_argument("--sweep", action="store_true", help="also print a row for each of several thresholds")
    cache.add_argument("--json", action="store_true")
    cache.set_defaults(func=_bench)
    overhead = kinds.add_parser("overhead", help="latency and CPU `ctxgate local` adds to an upstream call")
    overhead.add_argument("--requests", type=int, default=1000, help="requests each way (direct, via the gateway)")
    overhead.add_argument(
        "--clients", type=int, nargs="+", default=[1, 8], help="concurrency levels to measure (default: 1 8)"
    )
    overhead.add_argument("--json", action="store_true")
    overhead.set_defaults(func=_bench)
    stream = kinds.add_parser("stream", help="time to first token and chunk pacing, direct and via ctxgate local")
    stream.add_argument(
        "--requests", type=int, default=30, help="streamed requests per mode (direct, stateless, stateful)"
    )
    stream.add_argument("--chunks", type=int, default=40, help="content chunks the upstream streams per request")
    stream.add_argument("--interval-ms", type=float, default=25.0, help="the upstream's pause before each chunk")
    stream.add_argument("--json", action="store_true")
    stream.set_defaults(func=_bench)
    contention = kinds.add_parser(
        "contention", help="many writers on few sessions through ctxgate local, against a flaky upstream"
    )
    contention.add_argument("--writers", type=int, default=50, help="concurrent client threads")
    contention.add_argument("--sessions", type=int, default=10, help="sessions the writers share")
    contention.add_argument("--turns", type=int, default=4, help="requests each writer sends")
    contention.add_argument("--fault-rate", type=float, default=0.3, help="share of upstream calls that misbehave")
    contention.add_argument("--seed", type=int, default=7, help="the upstream's fault sequence")
    contention.add_argument("--json", action="store_true")
    contention.set_defaults(func=_bench)
    bound = kinds.add_parser("cache-bound", help="a bounded semantic scope: memory per entry and eviction cost")
    bound.add_argument("--entries", type=int, default=600, help="prompts stored into one scope")
    bound.add_argument("--bound", type=int, default=500, help="the scope's bound (CTXGATE_CACHE_MAX_ENTRIES_PER_SCOPE)")
    bound.add_argument("--response-bytes", type=int, default=4000, help="size of each cached answer")
    bound.add_argument("--json", action="store_true")
    bound.set_defaults(func=_bench)
    from ctxgate import cli_usage

    cli_usage.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
