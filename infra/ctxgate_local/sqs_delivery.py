"""Lambda's SQS event source mapping, locally: poll each mapped queue, invoke the handler with a batch, delete
what succeeded, and leave failed records to reappear after their visibility timeout (moto moves a record to the
dead-letter queue once it exceeds the redrive policy's ``maxReceiveCount``)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ctxgate.adapters.sqs_records import received_messages_event

from ctxgate_local.handlers import invoke
from ctxgate_local.template import REGION, Function, LocalStack, QueueMapping

logger = logging.getLogger(__name__)


def deliver_once(sqs: Any, function: Function, mapping: QueueMapping, stack: LocalStack, wait_seconds: int = 0) -> int:
    """One poll: receive up to a batch, invoke, delete the successes. Returns how many records were delivered."""
    url = stack.physical[mapping.queue_logical_id]
    received = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=min(10, mapping.batch_size),
        WaitTimeSeconds=wait_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    if not received:
        return 0
    try:
        response = invoke(function, received_messages_event(received, stack.arns[mapping.queue_logical_id], REGION))
    except Exception:
        logger.exception("handler %s failed its whole batch", function.logical_id)
        return len(received)  # nothing is deleted: every record comes back after its visibility timeout
    failed = set()
    if mapping.report_failures and isinstance(response, dict):
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    done = [m for m in received if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
        )
    return len(received)


class QueuePollers:
    """One polling thread per (function, queue) mapping of the template."""

    def __init__(self, stack: LocalStack, session: Any) -> None:
        self.stack = stack
        self.session = session
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for function in self.stack.functions.values():
            for mapping in function.queues:
                thread = threading.Thread(
                    target=self._poll, args=(function, mapping), name=f"sqs-{mapping.queue_logical_id}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _poll(self, function: Function, mapping: QueueMapping) -> None:
        sqs = self.session.client("sqs")
        while not self._stop.is_set():
            try:
                if deliver_once(sqs, function, mapping, self.stack, wait_seconds=1) == 0:
                    self._stop.wait(0.2)
            except Exception:  # the poller must outlive any one failure, as Lambda's does
                if self._stop.is_set():
                    return  # moto's server went away under a delivery abandoned by stop()
                logger.exception("polling %s failed", mapping.queue_logical_id)
                time.sleep(1)

    def stop(self, timeout: float = 2.0) -> list[str]:
        """Stop polling. Waits at most ``timeout`` seconds in all for deliveries in progress, then abandons them
        (their threads are daemons): a batch of compactions can take many seconds of CPU, and the queues die with
        the process anyway. Returns the names of the pollers abandoned mid-delivery."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return [thread.name for thread in self._threads if thread.is_alive()]
