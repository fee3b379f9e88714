"""SQS consumer of the runs queue: start each run's execution, named after the run, so a duplicate delivery never
starts a second one. Partial batch failures; failed records are redelivered and end in the runs DLQ."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    from ctxgate.bootstrap import agent_service

    job = json.loads(record.body)
    outcome = agent_service().start(job["tenant"], job["run_id"])
    logger.info("run start", extra={"run_id": job["run_id"], "outcome": outcome})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
