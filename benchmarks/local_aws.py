"""The AWS a benchmark runs on: moto in-process, with the resources of template.yaml (as ``ctxgate local``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def local_aws(**environment: str) -> Iterator[Any]:
    """Yields the provisioned ``LocalStack``; the process environment is the api function's, plus ``environment``."""
    import boto3
    from ctxgate.bootstrap import reset
    from ctxgate_local import moto_patches
    from ctxgate_local.handlers import LocalFunctions
    from ctxgate_local.template import provision, read_stack
    from moto import mock_aws

    os.environ.update(
        {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    functions = LocalFunctions()
    moto_patches.apply(functions)
    with mock_aws():
        stack = provision(read_stack(ROOT / "template.yaml"), boto3.session.Session(region_name="us-east-1"))
        functions.add_stack(stack)
        os.environ.update(stack.functions["ApiFunction"].environment)
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the handlers' INFO lines would bury the figures (and --json)
        os.environ.update(environment)
        reset()
        yield stack
