"""The layout's floors, checked on the real import graph (every ``import`` in every module,
function-level ones included).

    shouwang (the CLI), bench          may import anything
    ingest, analytics, notify, api,    core, the shared domain modules and themselves:
    dashboards, gateway (stages)       never another stage
    simulators                         core, the shared domain modules and itself
    responsibility, lifecycle, broker, core and each other (the shared domain modules and
    sites, backups                     the shared operations module backups)
    core                               nothing of the platform but itself
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = frozenset({"core"})
SHARED = frozenset({"responsibility", "lifecycle", "broker", "sites", "backups"})
STAGES = frozenset({"ingest", "analytics", "notify", "api", "dashboards", "gateway"})
TOP = frozenset({"shouwang", "bench"})
PLATFORM = CORE | SHARED | STAGES | TOP | {"simulators"}

ALLOWED: dict[str, frozenset[str]] = {
    "core": CORE,
    **{p: CORE | SHARED for p in SHARED},
    **{p: CORE | SHARED | {p} for p in STAGES},
    "simulators": CORE | SHARED | {"simulators"},
}


def modules(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import of a platform package in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in PLATFORM:
                yield node.lineno, top


def violations(package: str) -> list[str]:
    allowed = ALLOWED[package]
    return [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in modules(package)
        for line, top in imported(path)
        if top not in allowed
    ]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_floor_imports_only_what_lies_below_it(package: str) -> None:
    assert list(modules(package)), f"no package {package}"
    assert violations(package) == []


def test_the_check_catches_a_stage_reaching_into_another(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from analytics.store import apply\n    import shouwang.cli\n")
    assert list(imported(bad)) == [(2, "analytics"), (3, "shouwang")]
    assert "analytics" not in ALLOWED["api"] and "shouwang" not in ALLOWED["core"]


def test_processes_are_started_one_way() -> None:
    """Only ``shouwang.launch`` spells out ``python -m``: no stage hard-codes a module to run.
    (The benchmarks run what they measure as they need to.)"""
    found = [
        f"{path.relative_to(ROOT)}"
        for package in sorted(PLATFORM - {"bench"})
        for path in modules(package)
        if '"-m"' in path.read_text(encoding="utf-8") and path != ROOT / "shouwang" / "launch.py"
    ]
    assert found == []


def test_every_main_module_runs() -> None:
    """A ``__main__.py`` is what ``python -m PACKAGE`` runs; one that only holds functions would
    be a module named after nothing."""
    for package in sorted(PLATFORM):
        main = ROOT / package / "__main__.py"
        if main.exists():
            text = main.read_text(encoding="utf-8")
            assert 'if __name__ == "__main__":' in text or "\nmain()" in text, main
