"""Scheduled sweeper: sessions idle past their TTL go whole (every DynamoDB item and S3 object at once); S3
objects that no item references (left by a crash between an upload and its DynamoDB write) are deleted; agent
runs still queued or running past their deadline are failed.

Input: the EventBridge Scheduler event (ignored). Output ``{"expired_sessions", "orphaned_objects", "stuck_runs"}``.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger()
BATCH = 100
RESERVE_MS = 10_000  # stop starting new batches this close to the timeout


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    from ctxgate.bootstrap import context_store, run_sweeper
    from ctxgate.settings import get_settings

    settings, store, now = get_settings(), context_store(), time.time()
    expired = 0
    while context.get_remaining_time_in_millis() > RESERVE_MS:
        swept = store.sweep_expired(now, limit=BATCH)
        expired += swept
        if swept < BATCH:
            break
    window = 2 * settings.sweep_interval_seconds  # each object is judged by two runs, so one failed run loses nothing
    orphans = store.sweep_orphans(now, grace_seconds=settings.orphan_grace_seconds, window_seconds=window)
    stuck = run_sweeper().sweep_stuck(now)
    result = {"expired_sessions": expired, "orphaned_objects": orphans, "stuck_runs": stuck}
    logger.info("swept", extra=result)
    return result
