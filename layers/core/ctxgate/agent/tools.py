"""Running a tool: an HTTP webhook (timeout, response-size cap, host allowlist) or a Lambda function.

A permanent failure becomes an error *result* the model can react to (:class:`ToolError`); a transient one
raises :class:`TransientError`, which the state machine retries. Webhooks may only reach allowlisted hosts; with
no allowlist configured, any public host is allowed but private, loopback and link-local addresses never are,
so a run cannot be turned against internal addresses.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from ctxgate.agent.models import ToolSpec

MAX_RESPONSE_BYTES = 256 * 1024


class ToolError(Exception):
    """The tool failed in a way retrying will not fix; the model sees the message as an error result."""


class TransientError(Exception):
    """A timeout, a refused connection, a 429 or a 5xx: Step Functions retries it (matched by this name)."""


def check_host(url: str, allowlist: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"tool endpoint {url!r} is not an http(s) URL")
    host = parts.hostname.lower()
    if allowlist:
        if not any(fnmatch.fnmatch(host, pattern.lower()) for pattern in allowlist):
            raise ToolError(f"tool host {host!r} is not on the allowlist")
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443)}
    except socket.gaierror as error:
        raise TransientError(f"cannot resolve {host}: {error}") from error
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise ToolError(f"tool host {host!r} resolves to a non-public address; add it to the allowlist")


def call_webhook(spec: ToolSpec, arguments: dict[str, Any], allowlist: list[str]) -> str:
    import httpx

    assert spec.endpoint is not None
    endpoint = spec.endpoint
    check_host(endpoint.url, allowlist)
    headers = {"content-type": "application/json", **endpoint.headers}
    try:
        with (
            httpx.Client(timeout=endpoint.timeout_seconds, follow_redirects=False) as client,
            client.stream("POST", endpoint.url, json=arguments, headers=headers) as response,
        ):
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ToolError(f"tool response is over {MAX_RESPONSE_BYTES} bytes")
            status = response.status_code
    except httpx.TransportError as error:
        raise TransientError(f"tool {spec.function.name} unreachable: {error!r}") from error
    text = body.decode("utf-8", errors="replace")
    if status == 429 or status >= 500:
        raise TransientError(f"tool {spec.function.name} returned HTTP {status}")
    if status >= 400:
        raise ToolError(f"tool {spec.function.name} returned HTTP {status}: {text[:500]}")
    return text


def call_lambda(spec: ToolSpec, arguments: dict[str, Any]) -> str:
    from botocore.exceptions import ClientError

    from ctxgate.aws import client

    try:
        response = client("lambda").invoke(FunctionName=spec.lambda_arn, Payload=json.dumps(arguments).encode())
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("TooManyRequestsException", "ServiceException", "ResourceNotReadyException"):
            raise TransientError(f"lambda tool {spec.function.name}: {code}") from error
        raise ToolError(f"lambda tool {spec.function.name}: {code}") from error
    payload = response["Payload"].read().decode("utf-8", errors="replace")
    if len(payload) > MAX_RESPONSE_BYTES:
        raise ToolError(f"tool response is over {MAX_RESPONSE_BYTES} bytes")
    if response.get("FunctionError"):
        raise ToolError(f"lambda tool {spec.function.name} failed: {payload[:500]}")
    return payload


def run_tool(spec: ToolSpec, arguments_json: str, allowlist: list[str]) -> str:
    try:
        arguments = json.loads(arguments_json or "{}")
    except json.JSONDecodeError as error:
        raise ToolError(f"the model's arguments are not JSON: {error}") from error
    if not isinstance(arguments, dict):
        raise ToolError("the model's arguments must be a JSON object")
    if spec.endpoint is not None:
        return call_webhook(spec, arguments, allowlist)
    return call_lambda(spec, arguments)
