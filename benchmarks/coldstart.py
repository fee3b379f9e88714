"""``ctxgate bench coldstart``: import-and-init time of each handler module, each in a fresh process.

A bare ``import boto3`` is measured in the same run as the baseline, and every handler is reported as a ratio
to it, so the figure means the same on a fast or a slow (or busy) machine. Runs are interleaved
(baseline, handler A, handler B, baseline, ...) and the median of ``repeats`` is kept.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 1.5

_PROBE = """
import importlib.util, sys, time
path = sys.argv[1]
start = time.perf_counter()
if path == "boto3":
    import boto3
else:
    spec = importlib.util.spec_from_file_location("handler_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(time.perf_counter() - start)
"""


def handler_modules(root: Path = ROOT) -> dict[str, Path]:
    return {p.parent.name: p for p in sorted((root / "functions").glob("*/app.py"))}


def _measure(target: str) -> float:
    env = {
        **os.environ,
        "POWERTOOLS_SERVICE_NAME": "ctxgate",
        "POWERTOOLS_METRICS_NAMESPACE": "ctxgate",
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
    }
    out = subprocess.run([sys.executable, "-c", _PROBE, target], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def measure(repeats: int) -> dict[str, object]:
    handlers = handler_modules()
    samples: dict[str, list[float]] = {"boto3": [], **{name: [] for name in handlers}}
    for _ in range(repeats):
        samples["boto3"].append(_measure("boto3"))
        for name, path in handlers.items():
            samples[name].append(_measure(str(path)))
    baseline = statistics.median(samples["boto3"])
    rows = {
        name: {"ms": round(statistics.median(s) * 1000, 1), "ratio": round(statistics.median(s) / baseline, 2)}
        for name, s in samples.items()
        if name != "boto3"
    }
    return {
        "baseline_import_boto3_ms": round(baseline * 1000, 1),
        "handlers": rows,
        "goal_ratio": GOAL_RATIO,
        "all_within_goal": all(r["ratio"] <= GOAL_RATIO for r in rows.values()),
        "repeats": repeats,
        "python": sys.version.split()[0],
    }


def main(*, json_output: bool, repeats: int) -> int:
    result = measure(repeats)
    if json_output:
        print(json.dumps(result))
        return 0
    print(f"baseline: import boto3 = {result['baseline_import_boto3_ms']} ms (median of {repeats} fresh processes)")
    print(f"{'handler':<20}{'import+init ms':>16}{'ratio':>8}")
    for name, row in result["handlers"].items():  # type: ignore[union-attr]
        flag = "" if row["ratio"] <= GOAL_RATIO else "  over goal"
        print(f"{name:<20}{row['ms']:>16}{row['ratio']:>8}{flag}")
    return 0
