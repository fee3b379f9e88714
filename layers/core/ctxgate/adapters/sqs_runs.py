"""SQS implementation of :class:`ctxgate.agent.ports.RunQueue`: runs wait here until the starter starts them."""

from __future__ import annotations

import json
from typing import Any

from ctxgate.aws import client


class SqsRunQueue:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    def enqueue(self, tenant: str, run_id: str) -> None:
        body = json.dumps({"tenant": tenant, "run_id": run_id})
        (self._sqs or client("sqs")).send_message(QueueUrl=self.queue_url, MessageBody=body)
