"""SQS implementation of :class:`ctxgate.context.ports.CompactionQueue`, and the consumer's jittered redelivery."""

from __future__ import annotations

from typing import Any

from ctxgate.aws import client
from ctxgate.context.models import CompactionRequest
from ctxgate.retry import RetryPolicy

# Redelivery backoff for failed records, in seconds of SQS visibility timeout (SQS allows up to 12 hours).
REDELIVERY = RetryPolicy(base_delay=5.0, max_delay=900.0)


class SqsCompactionQueue:
    def __init__(self, queue_url: str, sqs: Any = None) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    @property
    def sqs(self) -> Any:
        return self._sqs or client("sqs")

    def request(self, job: CompactionRequest) -> None:
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=job.model_dump_json())

    def delay_redelivery(self, receipt_handle: str, receive_count: int) -> int:
        """Make a failed message visible again after a full-jitter exponential delay. Returns the delay."""
        delay = int(REDELIVERY.backoff(max(0, receive_count - 1)))
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
        )
        return delay
