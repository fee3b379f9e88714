"""``ctxgate usage``: a tenant's usage and cost from the usage table of a deployed stack or of ``ctxgate local``.

The table is named by ``--table``, found in ``--stack``'s outputs (``UsageTableName``), or, with only
``--endpoint-url`` (the local AWS endpoint), is the one ``ctxgate local`` provisions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

LOCAL_USAGE_TABLE = "ctxgate-local-UsageTable"
COLUMNS = ("requests", "input_tokens", "cached_input_tokens", "output_tokens", "cache_hits", "cost_usd")


def add_parser(commands: Any) -> None:
    usage = commands.add_parser("usage", help="a tenant's usage and cost (requests, tokens, cache hits, USD)")
    usage.add_argument("--tenant", required=True)
    usage.add_argument("--start", default=None, help="first day, YYYY-MM-DD (default: first day of --end's month)")
    usage.add_argument("--end", default=None, help="last day, YYYY-MM-DD (default: today, UTC)")
    usage.add_argument("--group-by", choices=("day", "model", "key"), default="day")
    usage.add_argument("--json", action="store_true", help="print the report as one JSON object")
    add_location_arguments(usage)
    usage.set_defaults(func=run)


def add_location_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the stack's tables are: ``--stack``/``--table`` (deployed) or ``--endpoint-url`` (ctxgate local)."""
    parser.add_argument("--stack", default=None, help="a deployed stack's name (its outputs name the table)")
    parser.add_argument("--table", default=None, help="the table's name (instead of --stack)")
    parser.add_argument("--endpoint-url", default=None, help="an AWS endpoint, e.g. ctxgate local's")
    parser.add_argument("--region", default=None)


def run(args: argparse.Namespace) -> int:
    from ctxgate.adapters.dynamodb_quotas import DynamoQuotaStore
    from ctxgate.errors import CtxgateError
    from ctxgate.quotas.report import parse_group_by, parse_period, usage_report

    try:
        start, end = parse_period(args.start, args.end, today=dt.datetime.now(dt.UTC).date())
        group_by = parse_group_by(args.group_by)
    except CtxgateError as error:
        print(f"ctxgate usage: {error.message}", file=sys.stderr)
        return 2
    session = _session(args)
    table = _table(args, session, output="UsageTableName", local=LOCAL_USAGE_TABLE)
    if table is None:
        print("ctxgate usage: give --stack, --table or --endpoint-url", file=sys.stderr)
        return 2
    store = DynamoQuotaStore(table, session.client("dynamodb", endpoint_url=args.endpoint_url))
    report = usage_report(args.tenant, start, end, group_by, store.usage(args.tenant, start, end))
    if args.json:
        print(json.dumps(report))
    else:
        print(render(report))
    return 0


def render(report: dict[str, Any]) -> str:
    label = {"day": "date", "model": "model", "key": "key_id"}[report["group_by"]]
    rows = [[str(row[label] or "(jwt)"), *(_cell(row[c]) for c in COLUMNS)] for row in report["data"]]
    rows.append(["total", *(_cell(report["total"][c]) for c in COLUMNS)])
    header = [label, *COLUMNS]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"usage of tenant {report['tenant']} from {report['start']} to {report['end']}"]
    for row in [header, *rows]:
        first, *rest = zip(row, widths, strict=True)
        lines.append("  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


def _session(args: argparse.Namespace) -> Any:
    import boto3

    region = args.region or ("us-east-1" if args.endpoint_url else None)
    session = boto3.session.Session(region_name=region)
    if args.endpoint_url and session.get_credentials() is None:
        # The local endpoint (moto) accepts any credentials; a shell without AWS configuration has none.
        session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=region)
    return session


def _table(args: argparse.Namespace, session: Any, *, output: str, local: str) -> str | None:
    if args.table:
        return str(args.table)
    if args.stack:
        stacks = session.client("cloudformation", endpoint_url=args.endpoint_url).describe_stacks(StackName=args.stack)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks["Stacks"][0].get("Outputs", [])}
        return outputs.get(output)
    return local if args.endpoint_url else None
