"""``ctxgate local``'s queue pollers stop promptly, even while a delivery runs (Ctrl-C must not wait for it)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from ctxgate_local import sqs_delivery
from ctxgate_local.sqs_delivery import QueuePollers
from ctxgate_local.template import Function, LocalStack, QueueMapping


class Session:
    def client(self, name: str) -> Any:
        return object()


def stack() -> LocalStack:
    function = Function("CompactFunction", Path("."), "app.lambda_handler", {}, 60)
    function.queues.append(QueueMapping("CompactionQueue", 10, True))
    return LocalStack(template={}, root=Path("."), parameters={}, functions={"CompactFunction": function})


def test_stop_abandons_a_delivery_that_outlasts_its_timeout_and_names_it(monkeypatch: pytest.MonkeyPatch):
    # GIVEN a poller inside a delivery that will not finish until released
    started, release = threading.Event(), threading.Event()

    def deliver(*args: Any, **kwargs: Any) -> int:
        started.set()
        release.wait(30)
        return 1

    monkeypatch.setattr(sqs_delivery, "deliver_once", deliver)
    pollers = QueuePollers(stack(), Session())
    pollers.start()
    assert started.wait(10)
    # WHEN the pollers are stopped with a short timeout
    busy = pollers.stop(timeout=0.05)
    # THEN stop returns without waiting for the delivery, and names the poller it abandoned
    assert busy == ["sqs-CompactionQueue"]
    release.set()


def test_stop_waits_for_idle_pollers_and_abandons_none(monkeypatch: pytest.MonkeyPatch):
    # GIVEN a poller whose queue is empty
    monkeypatch.setattr(sqs_delivery, "deliver_once", lambda *args, **kwargs: 0)
    pollers = QueuePollers(stack(), Session())
    pollers.start()
    # WHEN it is stopped with a generous timeout
    # THEN it exits and nothing is abandoned
    assert pollers.stop(timeout=30) == []
