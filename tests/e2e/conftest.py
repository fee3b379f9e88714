"""Start the real ``ctxgate local`` command on a free port for the end-to-end tests."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from ctxgate_local.runtime import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LocalGateway:
    process: subprocess.Popen
    base_url: str
    aws_endpoint: str
    api_key: str
    """The development key for tenant ``local`` that ``ctxgate local`` printed."""
    output: list[str]

    @property
    def auth(self) -> dict[str, str]:
        """Headers that authenticate as tenant ``local`` (what the openai SDK sends for ``api_key``)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def aws(self, service: str):
        """A boto3 client of the gateway's moto server."""
        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def dynamodb_item_count(self, *, except_tables: tuple[str, ...] = ()) -> int:
        ddb = self.aws("dynamodb")
        tables = [t for t in ddb.list_tables()["TableNames"] if t not in except_tables]
        return sum(int(ddb.scan(TableName=t, Select="COUNT")["Count"]) for t in tables)

    def s3_object_count(self) -> int:
        s3 = self.aws("s3")
        return sum(s3.list_objects_v2(Bucket=b["Name"]).get("KeyCount", 0) for b in s3.list_buckets()["Buckets"])


def start_gateway(*args: str, timeout: float = 60.0, sigint_ignored: bool = False) -> LocalGateway:
    """``sigint_ignored``: start it as a shell's background job would (``cmd &`` without job control), with SIGINT
    ignored from the start."""
    command = [str(Path(sys.executable).with_name("ctxgate")), "local", "--port", str(free_port()), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=ignore
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    base_url = aws_endpoint = api_key = ""
    deadline = time.monotonic() + timeout
    ready = False  # "Ctrl-C stops it." comes once its signal handlers are in place
    while not (base_url and aws_endpoint and api_key and ready):
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise RuntimeError("ctxgate local did not start:\n" + "".join(output)) from None
        if line.startswith("ctxgate local gateway:"):
            base_url = line.split(": ", 1)[1].strip()
        elif line.startswith("aws endpoint:"):
            aws_endpoint = line.split(": ", 1)[1].strip()
        elif line.startswith("api key (tenant local):"):
            api_key = line.split(": ", 1)[1].strip()
        elif line.startswith("Ctrl-C stops it."):
            ready = True
    return LocalGateway(process, base_url, aws_endpoint, api_key, output)


def stop_gateway(gateway: LocalGateway) -> int:
    gateway.process.send_signal(signal.SIGINT)
    try:
        return gateway.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        gateway.process.kill()
        raise


@pytest.fixture(scope="module")
def gateway() -> Iterator[LocalGateway]:
    running = start_gateway()
    yield running
    if running.process.poll() is None:
        stop_gateway(running)
