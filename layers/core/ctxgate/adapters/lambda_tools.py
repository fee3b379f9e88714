"""Lambda tools: only functions the operator listed (``ToolFunctionArns``), and never one of ctxgate's own.

ctxgate's task functions trust the ``tenant`` in their event, so a run that could invoke them could act for any
tenant. They are refused here by name (every function of the stack is named ``<stack name>-...``), and the
template denies the tool role ``lambda:InvokeFunction`` on any function tagged with the stack's name, which holds
even if a name was truncated or the operator listed one of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ctxgate.agent.models import ToolSpec
from ctxgate.agent.ports import ToolError, TransientError

MAX_RESPONSE_BYTES = 256 * 1024
_TRANSIENT_CODES = frozenset({"TooManyRequestsException", "ServiceException", "ResourceNotReadyException"})


def function_name(arn: str) -> str:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` -> ``<name>``."""
    parts = arn.split(":")
    return parts[6] if len(parts) >= 7 else arn


class LambdaToolRunner:
    """Invokes allowed functions synchronously with the arguments as the event and the payload as the result."""

    def __init__(self, allowed_arns: Iterable[str], *, own_prefixes: Iterable[str], lambda_client: Any = None) -> None:
        """``allowed_arns``: the exact ARNs the operator listed. ``own_prefixes``: name prefixes of ctxgate's own
        functions (``"<stack name>-"``), refused even when listed. ``lambda_client`` defaults to boto3's."""
        self.allowed = frozenset(a.strip() for a in allowed_arns if a.strip())
        self.own_prefixes = tuple(p for p in own_prefixes if p)
        self._client = lambda_client

    def check(self, spec: ToolSpec) -> None:
        arn = spec.lambda_arn
        if arn is None:
            raise ToolError(f"tool {spec.function.name} is not a Lambda function")
        if function_name(arn).startswith(self.own_prefixes):
            raise ToolError(f"tool {spec.function.name}: ctxgate's own functions can never be tools")
        if arn not in self.allowed:
            raise ToolError(
                f"tool {spec.function.name}: {arn} is not one of the Lambda functions this gateway's operator "
                "allows as tools (ToolFunctionArns)"
            )

    def run(self, spec: ToolSpec, arguments: dict[str, Any], *, idempotency_key: str) -> str:
        """``idempotency_key`` is not sent: a Lambda tool receives exactly the model's arguments as its event."""
        from botocore.exceptions import ClientError

        self.check(spec)
        name = spec.function.name
        try:
            response = self.client.invoke(FunctionName=spec.lambda_arn, Payload=json.dumps(arguments).encode())
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in _TRANSIENT_CODES:
                raise TransientError(f"lambda tool {name}: {code}") from None
            raise ToolError(f"lambda tool {name}: {code}") from None
        raw = response["Payload"].read(MAX_RESPONSE_BYTES + 1)
        if len(raw) > MAX_RESPONSE_BYTES:
            raise ToolError(f"tool response is over {MAX_RESPONSE_BYTES} bytes")
        payload = raw.decode("utf-8", errors="replace")
        if response.get("FunctionError"):
            raise ToolError(f"lambda tool {name} failed: {_error_message(payload)}")
        return payload

    @property
    def client(self) -> Any:
        if self._client is None:
            from ctxgate.aws import client

            self._client = client("lambda")
        return self._client


def _error_message(payload: str) -> str:
    """The function's ``errorType: errorMessage``, without its stack trace."""
    try:
        error = json.loads(payload)
        return f"{error.get('errorType', 'Error')}: {str(error.get('errorMessage', ''))[:500]}"
    except (ValueError, AttributeError):
        return payload[:500]
