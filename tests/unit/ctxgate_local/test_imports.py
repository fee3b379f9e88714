"""The modules of ``ctxgate_local`` import each other one way only (deferred imports inside functions included)."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "infra" / "ctxgate_local"


def local_imports(path: Path) -> set[str]:
    """The ``ctxgate_local`` modules that ``path`` imports anywhere in its body."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "ctxgate_local":
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ctxgate_local."):
            found.add(node.module.split(".")[1])  # type: ignore[union-attr]
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ctxgate_local."))
    return found


def test_the_local_runtime_has_no_import_cycle():
    graph = {path.stem: local_imports(path) - {path.stem} for path in PACKAGE.glob("*.py")}
    assert graph["moto_patches"] == {"handlers"}, "the Lambda patch depends on the handler registry only"
    assert graph["template"] == set(), "the template reader is a leaf"
    list(graphlib.TopologicalSorter(graph).static_order())  # raises graphlib.CycleError on a cycle
