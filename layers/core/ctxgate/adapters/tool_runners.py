"""The tool runner an agent service uses: webhooks and Lambda functions behind one dispatching runner."""

from __future__ import annotations

from ctxgate.adapters.lambda_tools import LambdaToolRunner
from ctxgate.adapters.webhook_policy import WebhookPolicy
from ctxgate.adapters.webhook_tools import WebhookToolRunner
from ctxgate.agent.tools import ToolDispatcher


def tool_runner(allowed_hosts: list[str], function_arns: list[str], *, stack_name: str) -> ToolDispatcher:
    """Webhook tools under the host allowlist and the SSRF rules; Lambda tools limited to ``function_arns``, and
    never a function of the stack ``stack_name`` (ctxgate's own functions are named ``<stack name>-...``)."""
    return ToolDispatcher(
        webhook=WebhookToolRunner(WebhookPolicy.parse(allowed_hosts)),
        function=LambdaToolRunner(function_arns, own_prefixes=[f"{stack_name}-"]),
    )
