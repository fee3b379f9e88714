"""The one place that knows the shape of an SQS record as Lambda's event source mapping delivers it.

Used by ``ctxgate local``'s queue delivery (records from a real queue) and by the agent loop's hand-off to the
compaction consumer (a one-record batch that Step Functions passes to the function, which has no queue to return
the record to).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

HANDOFF_SOURCE_ARN = "arn:aws:states:::ctxgate:handoff"
"""``eventSourceARN`` of a record that did not come from a queue (the agent loop's hand-off)."""


def lambda_record(
    *,
    message_id: str,
    receipt_handle: str,
    body: str,
    source_arn: str,
    region: str,
    attributes: dict[str, Any] | None = None,
    message_attributes: dict[str, Any] | None = None,
    md5_of_body: str | None = None,
) -> dict[str, Any]:
    """One record of a Lambda SQS event."""
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle,
        "body": body,
        "attributes": attributes or {},
        "messageAttributes": message_attributes or {},
        "md5OfBody": md5_of_body or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def received_messages_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The Lambda event for messages from ``ReceiveMessage`` (as the event source mapping builds it)."""
    return {
        "Records": [
            lambda_record(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m["Body"],
                source_arn=queue_arn,
                region=region,
                attributes=m.get("Attributes"),
                message_attributes=m.get("MessageAttributes"),
                md5_of_body=m.get("MD5OfBody"),
            )
            for m in messages
        ]
    }


def handoff_batch(body: str, *, message_id: str, region: str = "local") -> list[dict[str, Any]]:
    """A one-record batch for a consumer invoked directly (not by a queue): no receipt handle to act on."""
    return [
        lambda_record(
            message_id=message_id,
            receipt_handle="",
            body=body,
            source_arn=HANDOFF_SOURCE_ARN,
            region=region,
            attributes={"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
        )
    ]


def came_from_queue(record: dict[str, Any]) -> bool:
    """Whether a record was delivered from a queue (so its visibility can be changed), not handed over."""
    return record.get("eventSourceARN") != HANDOFF_SOURCE_ARN and bool(record.get("receiptHandle"))
