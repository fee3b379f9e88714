"""SQS consumer: eviction and summarisation of sessions' verbatim history (the compaction queue).

The agent state machine also invokes it, with a one-record batch of the same shape, when a run's session is over
its high-water mark.

Partial batch failures: a failed record is retried after a jittered delay (its visibility timeout is changed
from the record's receive count) and reaches the DLQ after the queue's ``maxReceiveCount``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    # The domain is imported on first use, so the cold start pays only for Powertools.
    from ctxgate.adapters.sqs_records import came_from_queue
    from ctxgate.bootstrap import compaction_queue, context_engine
    from ctxgate.context.models import CompactionRequest

    try:
        job = CompactionRequest.model_validate_json(record.body)
        result = context_engine().compactor.run(job)
    except Exception:  # every failure, a malformed body included, is redelivered after a jittered delay
        queue = compaction_queue()
        if queue is not None and came_from_queue(record.raw_event):  # a hand-off has no queue to return to
            queue.delay_redelivery(record.receipt_handle, int(record.attributes.approximate_receive_count))
        raise
    logger.info("compaction", extra={"session": job.session_id, "status": result.status, "to": result.evicted_through})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
