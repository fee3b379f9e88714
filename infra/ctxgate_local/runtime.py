"""``ctxgate local``: moto's server in-process, the template's resources in it, the handlers behind HTTP."""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctxgate_local.template import REGION, LocalStack, provision, read_stack

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_template(start: Path | None = None) -> Path:
    """template.yaml in the current directory or a parent, else the repository this package came from."""
    for directory in [(start or Path.cwd()).resolve(), *(start or Path.cwd()).resolve().parents]:
        if (directory / "template.yaml").exists():
            return directory / "template.yaml"
    bundled = Path(__file__).resolve().parents[2] / "template.yaml"
    if bundled.exists():
        return bundled
    raise FileNotFoundError("template.yaml not found; run ctxgate local from the repository")


@dataclass
class LocalRuntime:
    stack: LocalStack
    aws_endpoint: str
    moto_server: Any
    http_server: Any = None
    pollers: Any = None
    dev_key: str = ""
    """A key for tenant ``local``, created at start (shown once, like any key)."""
    serving: bool = False
    """Whether :meth:`serve_forever` is running (in any thread)."""

    @property
    def base_url(self) -> str:
        host, port = self.http_server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def serve_forever(self) -> None:
        try:  # set inside the try: an interrupt right after it must still clear it
            self.serving = True
            self.http_server.serve_forever(poll_interval=0.2)
        finally:
            self.serving = False

    def stop(self) -> list[str]:
        """Stop serving, polling and moto. Returns the pollers abandoned mid-delivery (see
        :meth:`QueuePollers.stop`): while one runs, the process must end with ``os._exit``, because a thread still
        inside native code (ONNX Runtime embedding a compaction) aborts the interpreter's normal finalisation."""
        busy = self.pollers.stop() if self.pollers is not None else []
        if self.http_server is not None:
            # shutdown() waits for the serving loop to say it ended, which it never does if a Ctrl-C interrupted it
            # before it began: so only a loop still running (another thread's) is asked to stop.
            if self.serving:
                self.http_server.shutdown()
            self.http_server.server_close()
        self.moto_server.stop()
        return busy


def start(
    *,
    port: int,
    host: str = "127.0.0.1",
    config: Path | None = None,
    template: Path | None = None,
    moto_port: int | None = None,
    parameters: dict[str, str] | None = None,
    api_keys: list[tuple[str, str]] | None = None,
) -> LocalRuntime:
    """Start moto, provision the template's resources, and bind the HTTP API (not yet serving).

    The keys table gets a fresh development key for tenant ``local`` (``runtime.dev_key``) and each of ``api_keys``
    (``(key, tenant)`` pairs), so scripts and tests can use fixed keys."""
    import logging

    from moto.server import ThreadedMotoServer

    from ctxgate_local import moto_patches, powertools_patches
    from ctxgate_local.handlers import LocalFunctions

    functions = LocalFunctions()
    moto_patches.apply(functions)
    powertools_patches.apply()  # concurrent requests on threads, each as its own Lambda process would see it
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request otherwise

    moto_port = moto_port or free_port(host)
    moto = ThreadedMotoServer(ip_address=host, port=moto_port, verbose=False)
    moto.start()
    endpoint = f"http://{host}:{moto_port}"
    import httpx

    # Step Functions executions run for real (moto's engine); its boto3 clients find the server via MOTO_PORT.
    httpx.post(
        f"{endpoint}/moto-api/config", json={"stepfunctions": {"execute_state_machine": True}}
    ).raise_for_status()
    # The process *is* the Lambda environment for the in-process handlers: point every boto3 client at moto.
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ["MOTO_PORT"] = str(moto_port)
    import boto3

    stack = provision(read_stack(template or find_template(), parameters), boto3.session.Session(region_name=REGION))
    functions.add_stack(stack)
    for function in stack.functions.values():
        os.environ.update(function.environment)
    if config is not None:
        os.environ["CTXGATE_MODELS_FILE"] = str(config.resolve())
    from ctxgate.aws import reset_clients
    from ctxgate.settings import get_settings

    get_settings.cache_clear()
    reset_clients()
    from ctxgate.bootstrap import key_service

    from ctxgate_local.authorizers import route_authorizers
    from ctxgate_local.http_api import make_server
    from ctxgate_local.sqs_delivery import QueuePollers

    runtime = LocalRuntime(stack=stack, aws_endpoint=endpoint, moto_server=moto)
    try:  # a JWT-mode template or a bad --api-key must not leave moto's server running
        authorizers = route_authorizers(stack)
        runtime.dev_key = key_service().create("local", name="development key (ctxgate local)").secret
        for key, tenant in api_keys or []:
            key_service().create(tenant, name="registered with --api-key", secret=key)
    except Exception:
        moto.stop()
        raise
    runtime.http_server = make_server(host, port, stack.functions, authorizers)
    runtime.pollers = QueuePollers(stack, boto3.session.Session(region_name=REGION))
    runtime.pollers.start()
    return runtime


def run_in_thread(runtime: LocalRuntime) -> threading.Thread:
    thread = threading.Thread(target=runtime.serve_forever, name="ctxgate-local-http", daemon=True)
    thread.start()
    return thread
