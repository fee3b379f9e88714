"""Run a template's Lambda handlers in-process, the way the Lambda runtime would import and call them.

``LocalFunctions`` says which handler serves a Lambda function *name*: whoever provisions a stack fills one, and the
Lambda patch in ``moto_patches`` reads it. The modules of ``ctxgate_local`` depend one way only:
``template`` <- ``handlers`` <- ``moto_patches`` / ``http_api`` / ``sqs_delivery`` <- ``runtime``.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ctxgate_local.template import ACCOUNT, REGION, Function, LocalStack

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}


@dataclass
class LocalContext:
    """The attributes of ``aws_lambda_powertools.utilities.typing.LambdaContext`` that handlers read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline: float
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def load_handler(function: Function) -> Any:
    """Import ``CodeUri/<module>.py`` under a module name unique to the function and return its handler."""
    module_name, attribute = function.handler.rsplit(".", 1)
    with _lock:
        module = _modules.get(function.logical_id)
        if module is None:
            path = function.code_uri / f"{module_name.replace('.', '/')}.py"
            unique = f"ctxgate_fn_{function.logical_id}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load handler module {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            _modules[function.logical_id] = module
    return getattr(module, attribute)


def invoke(function: Function, event: dict[str, Any]) -> Any:
    """Call the function's handler with ``event`` and a fresh context; exceptions propagate to the caller."""
    context = LocalContext(
        function_name=function.logical_id,
        memory_limit_in_mb=1024,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.logical_id}",
        aws_request_id=str(uuid.uuid4()),
        deadline=time.monotonic() + function.timeout,
    )
    return load_handler(function)(event, context)


class LocalFunctions:
    """The functions whose handlers run in this process, by the name Lambda knows them by (``FunctionName``)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Function] = {}

    def add(self, name: str, function: Function) -> None:
        self._by_name[name] = function

    def add_stack(self, stack: LocalStack) -> None:
        """Every function of a provisioned stack, under its physical name."""
        for logical_id, function in stack.functions.items():
            self.add(stack.physical[logical_id], function)

    def get(self, name: str) -> Function | None:
        return self._by_name.get(name)
