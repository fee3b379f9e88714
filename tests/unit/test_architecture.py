"""The package's shape: no import cycles, the domain never reaches for the HTTP layer or the composition root,
handlers stay thin and modules stay focused. Imports are read from the source (``ast``), lazy ones included."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "ctxgate"
DOMAIN = ("context", "sessions", "cache", "agent", "chat", "quotas")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, type_checking: bool) -> set[str]:
    """The ctxgate modules ``path`` imports; with ``type_checking`` False, not those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    if not type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for child in node.body for n in ast.walk(child))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("ctxgate"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ctxgate"):
            found.add(node.module)
    return found


def graph(*, type_checking: bool) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for target in imports(path, type_checking=type_checking):
            while target not in modules and "." in target:  # `from ctxgate.x import name` names a module or not
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                targets.add(target)
        edges[name] = targets
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


def test_no_import_cycle_between_modules():
    assert cycles(graph(type_checking=False)) == []


def test_no_import_cycle_between_packages_even_for_type_checking():
    modules = graph(type_checking=True)
    packages: dict[str, set[str]] = {}
    for source, targets in modules.items():
        packages.setdefault(package_of(source), set()).update(package_of(t) for t in targets if package_of(t))
    for name, targets in packages.items():
        targets.discard(name)
    assert cycles(packages) == []


def test_the_domain_never_imports_the_http_layer_or_the_composition_root():
    offenders = [
        (source, target)
        for source, targets in graph(type_checking=True).items()
        if source.split(".")[1:2] and source.split(".")[1] in DOMAIN
        for target in targets
        if target.startswith(("ctxgate.api", "ctxgate.bootstrap"))
    ]
    assert offenders == []


def test_handlers_are_thin():
    long = {
        p.parent.name: n for p in (ROOT / "functions").glob("*/app.py") if (n := len(p.read_text().splitlines())) > 60
    }
    assert long == {}


def test_modules_stay_focused():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
