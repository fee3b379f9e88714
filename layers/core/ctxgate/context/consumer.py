"""What the compaction consumer needs beyond the job itself: the engine from settings, and jittered redelivery."""

from __future__ import annotations

from functools import cache

from ctxgate.adapters.aws import client
from ctxgate.context.engine import ContextEngine
from ctxgate.retry import RetryPolicy

# Redelivery backoff for failed records, in seconds of SQS visibility timeout (SQS allows up to 12 hours).
REDELIVERY = RetryPolicy(base_delay=5.0, max_delay=900.0)


@cache
def compaction_engine() -> ContextEngine:
    from ctxgate.api.gateway import build_engine
    from ctxgate.settings import get_settings

    return build_engine(get_settings())[1]


def delay_retry(receipt_handle: str, receive_count: int) -> int:
    """Make a failed message visible again after a full-jitter exponential delay. Returns the delay."""
    from ctxgate.settings import get_settings

    delay = int(REDELIVERY.backoff(max(0, receive_count - 1)))
    client("sqs").change_message_visibility(
        QueueUrl=get_settings().compaction_queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=delay
    )
    return delay
