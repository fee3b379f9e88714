"""SQS implementation of :class:`ctxgate.context.compaction.CompactionQueue`."""

from __future__ import annotations

from typing import Any

from ctxgate.adapters.aws import client
from ctxgate.context.compaction import CompactionRequest


class SqsCompactionQueue:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    def request(self, job: CompactionRequest) -> None:
        (self._sqs or client("sqs")).send_message(QueueUrl=self.queue_url, MessageBody=job.model_dump_json())
