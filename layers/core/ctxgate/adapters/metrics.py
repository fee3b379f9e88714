"""Cache metrics as CloudWatch Embedded Metric Format through Powertools Metrics.

Powertools is imported on the first metric, so handlers that never record one pay nothing; ``flush`` is called by
the handler at the end of each invocation.
"""

from __future__ import annotations

from typing import Any

_STATUS_METRIC = {
    "hit-exact": "CacheHitExact",
    "hit-semantic": "CacheHitSemantic",
    "miss": "CacheMiss",
    "bypass": "CacheBypass",
}


class EmfCacheMetrics:
    def __init__(self) -> None:
        self._metrics: Any = None
        self._pending = False

    def _instance(self) -> Any:
        if self._metrics is None:
            from aws_lambda_powertools import Metrics

            self._metrics = Metrics()
        return self._metrics

    def record(self, status: str, tokens_saved: int) -> None:
        from aws_lambda_powertools.metrics import MetricUnit

        metrics = self._instance()
        self._pending = True
        metrics.add_metric(name=_STATUS_METRIC[status], unit=MetricUnit.Count, value=1)
        if tokens_saved:
            metrics.add_metric(name="CacheTokensSaved", unit=MetricUnit.Count, value=tokens_saved)

    def flush(self) -> None:
        if self._metrics is not None and self._pending:
            self._pending = False
            self._metrics.flush_metrics(raise_on_empty_metrics=False)


CACHE_METRICS = EmfCacheMetrics()


def flush() -> None:
    CACHE_METRICS.flush()
