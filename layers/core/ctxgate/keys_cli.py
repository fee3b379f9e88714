"""``ctxgate keys create|list|revoke``: API keys in a deployed stack's keys table or in ``ctxgate local``'s.

Where the table is: ``--table NAME``; or ``--stack NAME`` (the stack's ``KeysTableName`` output, read through
CloudFormation); or, with ``--endpoint-url`` (``ctxgate local``'s ``aws endpoint``), the local stack's table.
A created key is printed once; listings never print a key, only its id.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ctxgate.auth.keys import ApiKey, KeyService
from ctxgate.auth.models import KeyLimits
from ctxgate.errors import CtxgateError

LOCAL_KEYS_TABLE = "ctxgate-local-KeysTable"
"""The keys table's name under ``ctxgate local`` (its resources are named ``ctxgate-local-<logical id>``)."""


def add_parser(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="issue a key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="")
    create.add_argument("--rpm", type=_positive, default=None, help="requests per minute")
    create.add_argument("--tpm", type=_positive, default=None, help="tokens per minute")
    create.add_argument("--tokens-per-day", type=_positive, default=None)
    create.add_argument("--models", default="", help="comma-separated models the key may use (default: all)")
    create.add_argument("--max-budget", type=_positive, default=None, help="ceiling on X-Ctxgate-Budget")
    create.add_argument("--cache-opt-in", action="store_true", help="honour X-Ctxgate-Cache-Opt-In and long max-age")
    create.add_argument("--expires-days", type=_positive, default=None)
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", default=None)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id", metavar="KEY_ID")
    for action in (create, listing, revoke):
        where = action.add_mutually_exclusive_group()
        where.add_argument("--stack", default=None, help="a deployed ctxgate stack's name")
        where.add_argument("--table", default=None, help="the keys table's name")
        action.add_argument("--endpoint-url", default=None, help="an AWS endpoint, e.g. ctxgate local's")
        action.add_argument("--region", default=None)
        action.add_argument("--json", action="store_true", help="print one JSON object")
    keys.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        service = _service(args)
        if args.keys_command == "create":
            return _create(service, args)
        if args.keys_command == "list":
            keys = service.list(args.tenant)
            if args.json:
                _print_json({"object": "list", "data": [public_view(k) for k in keys]})
            else:
                _print_table(keys)
            return 0
        record = service.revoke(args.key_id)
        if args.json:
            _print_json(public_view(record))
        else:
            print(f"Revoked {record.id} (tenant {record.tenant}).")
        return 0
    except CtxgateError as error:
        print(f"ctxgate keys: {error.message}", file=sys.stderr)
        return 1
    except LookupError as error:  # the table could not be found
        print(f"ctxgate keys: {error.args[0]}", file=sys.stderr)
        return 2


def _create(service: KeyService, args: argparse.Namespace) -> int:
    limits = KeyLimits(
        rpm=args.rpm,
        tpm=args.tpm,
        tokens_per_day=args.tokens_per_day,
        models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        max_budget_tokens=args.max_budget,
        cache_opt_in=args.cache_opt_in,
    )
    issued = service.create(args.tenant, name=args.name, limits=limits, expires_days=args.expires_days)
    if args.json:
        _print_json({**public_view(issued.record), "key": issued.secret})
    else:
        print(f"Created {issued.record.id} for tenant {issued.record.tenant}.")
        print(f"Key (shown once; store it now): {issued.secret}")
    return 0


def public_view(key: ApiKey) -> dict[str, Any]:
    """What may be shown of a stored key: everything but its hash (and the secret, which is not stored)."""
    limits = key.limits
    return {
        "id": key.id,
        "object": "api_key",
        "tenant": key.tenant,
        "name": key.name,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked": key.revoked,
        "status": _status(key),
        "limits": {
            "rpm": limits.rpm,
            "tpm": limits.tpm,
            "tokens_per_day": limits.tokens_per_day,
            "models": list(limits.models),
            "max_budget_tokens": limits.max_budget_tokens,
            "cache_opt_in": limits.cache_opt_in,
        },
    }


def _status(key: ApiKey) -> str:
    if key.revoked:
        return "revoked"
    return "expired" if key.expired(time.time()) else "active"


def _print_json(value: dict[str, Any]) -> None:
    print(json.dumps(value, separators=(",", ":")))


def _print_table(keys: list[ApiKey]) -> None:
    rows = [("ID", "TENANT", "NAME", "STATUS", "CREATED", "EXPIRES", "LIMITS")]
    for key in keys:
        limits = ", ".join(f"{k}={v}" for k, v in public_view(key)["limits"].items() if v not in (None, [], False))
        rows.append(
            (key.id, key.tenant, key.name, _status(key), _date(key.created_at), _date(key.expires_at), limits or "-")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _date(epoch: int | None) -> str:
    return "-" if epoch is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))


def _service(args: argparse.Namespace) -> KeyService:
    import boto3

    from ctxgate.bootstrap import build_keys

    session = boto3.session.Session(region_name=args.region)
    options: dict[str, Any] = {"region_name": session.region_name or "us-east-1"}
    if args.endpoint_url:
        options["endpoint_url"] = args.endpoint_url
        if session.get_credentials() is None:  # ctxgate local accepts any credentials; boto3 insists on some
            options.update(aws_access_key_id="local", aws_secret_access_key="local")
    table = args.table
    if table is None and args.stack:
        table = _stack_output(session.client("cloudformation", **options), args.stack, "KeysTableName")
    if table is None and args.endpoint_url:
        table = LOCAL_KEYS_TABLE
    if table is None:
        raise LookupError("say where the keys are: --stack NAME, --table NAME, or --endpoint-url URL (ctxgate local)")
    return build_keys(table, session.client("dynamodb", **options))


def _stack_output(cloudformation: Any, stack: str, name: str) -> str:
    from botocore.exceptions import ClientError

    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        raise LookupError(f"stack {stack!r} not found: {error.response['Error'].get('Message', '')}") from None
    for output in described.get("Outputs", []):
        if output["OutputKey"] == name:
            return str(output["OutputValue"])
    raise LookupError(f"stack {stack!r} has no {name} output; is it a ctxgate stack with API keys?")


def _positive(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value
