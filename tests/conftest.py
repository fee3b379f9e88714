"""Shared fixtures: AWS resources built from template.yaml inside moto, the api handler, a Lambda context."""

from __future__ import annotations

import copy
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, no endpoint override, and fresh process-wide caches for every test."""
    for name in ("AWS_ENDPOINT_URL", "CTXGATE_MODELS_FILE", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "ctxgate",
        "POWERTOOLS_METRICS_NAMESPACE": "ctxgate",
    }.items():
        monkeypatch.setenv(name, value)
    _reset_caches()
    yield
    _reset_caches()


def _reset_caches() -> None:
    from ctxgate.bootstrap import reset

    reset()


@dataclass
class Aws:
    """Resources of template.yaml, created in moto; physical names keyed by logical id."""

    physical: dict[str, str]
    session: Any
    stack: Any
    """The provisioned ``ctxgate_local.template.LocalStack`` (functions, queue ARNs, ...)."""
    functions: Any
    """The ``ctxgate_local.handlers.LocalFunctions`` that moto's Lambda invokes run: add one to make it invocable."""

    @property
    def table(self) -> str:
        return self.physical["SessionsTable"]

    @property
    def bucket(self) -> str:
        return self.physical["BlobBucket"]

    def item_count(self) -> int:
        return int(self.session.client("dynamodb").scan(TableName=self.table, Select="COUNT")["Count"])

    def object_keys(self) -> list[str]:
        listing = self.session.client("s3").list_objects_v2(Bucket=self.bucket)
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    from ctxgate_local import moto_patches
    from ctxgate_local.handlers import LocalFunctions
    from ctxgate_local.template import provision, read_stack
    from moto import mock_aws

    functions = LocalFunctions()
    moto_patches.apply(functions)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        stack = provision(read_stack(ROOT / "template.yaml"), boto3.session.Session(region_name="us-east-1"))
        functions.add_stack(stack)
        for name, value in stack.functions["ApiFunction"].environment.items():
            monkeypatch.setenv(name, value)
        _reset_caches()
        session = boto3.session.Session(region_name="us-east-1")
        yield Aws(physical=stack.physical, session=session, stack=stack, functions=functions)


@dataclass
class FakeContext:
    function_name: str = "ApiFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:ApiFunction"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


def load_function(name: str) -> ModuleType:
    """Import ``functions/<name>/app.py`` the way the Lambda runtime does (by file, under a unique name)."""
    path = ROOT / "functions" / name / "app.py"
    spec = importlib.util.spec_from_file_location(f"test_fn_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """A sample event from ``events/``; ``body``/``headers`` changes replace or merge into it."""
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    if "body" in changes:
        body = changes.pop("body")
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
        event["isBase64Encoded"] = False
    if "headers" in changes:
        event["headers"] = {**event["headers"], **changes.pop("headers")}
    event.update(changes)
    return event


@pytest.fixture
def models_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a models YAML and point the gateway at it."""

    def write(text: str) -> Path:
        path = tmp_path / "models.yaml"
        path.write_text(text)
        monkeypatch.setenv("CTXGATE_MODELS_FILE", str(path))
        _reset_caches()
        return path

    return write
