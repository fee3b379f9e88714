"""The ``ctxgate`` command: ``ctxgate local`` (the local gateway) and ``ctxgate bench ...`` (benchmarks).

Both front-ends import their implementation lazily; neither is used inside Lambda.
"""

from __future__ import annotations

import argparse
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
    runtime = start(port=args.port, host=args.host, config=args.config, parameters=overrides)
    from ctxgate.api.gateway import get_gateway

    try:
        models = get_gateway().router.names()
    except ValueError as error:
        runtime.stop()
        print(f"ctxgate local: {error}", file=sys.stderr)
        return 2
    print(f"ctxgate local gateway: {runtime.base_url}", flush=True)
    print(f"models: {', '.join(models)}", flush=True)
    print(f"aws endpoint (moto): {runtime.aws_endpoint}", flush=True)
    print("Ctrl-C stops it.", flush=True)
    try:
        runtime.serve_forever()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        runtime.stop()
    return 0


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
    local.set_defaults(func=_local)
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
    cache = kinds.add_parser("cache", help="GPTCache's similarity protocol through the response cache")
    cache.add_argument("--dataset", type=Path, required=True, help="a JSON list of {origin, similar} pairs")
    cache.add_argument("--threshold", type=float, default=None, help="semantic threshold (default: the setting)")
    cache.add_argument("--sweep", action="store_true", help="also print a row for each of several thresholds")
    cache.add_argument("--json", action="store_true")
    cache.set_defaults(func=_bench)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
