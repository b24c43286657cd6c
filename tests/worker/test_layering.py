"""The worker's layers: the session API (``distbench.worker``) below the tasks, the task runner
(``worker/runtime.py``) above them. Only the runner and the warm launcher, which preloads it,
may import the tasks; nothing else may import the runner, or the circle returns."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.source_literals import SRC

WORKER = SRC / "worker"


def imported_modules(path: Path) -> set[str]:
    """Every distbench module ``path`` imports, at the top or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            modules.add(node.module)
            modules |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in modules if name.startswith("distbench.")}


def importers_of(package: str, root: Path) -> set[str]:
    return {
        path.name
        for path in root.glob("*.py")
        if any(name == package or name.startswith(package + ".") for name in imported_modules(path))
    }


def test_only_the_runner_and_the_launcher_import_the_tasks() -> None:
    assert importers_of("distbench.benchmarks", WORKER) == {"runtime.py", "launcher.py"}


def test_only_the_entry_points_import_the_runner() -> None:
    assert importers_of("distbench.worker.runtime", WORKER) == {"__main__.py", "launcher.py"}
    assert importers_of("distbench.worker.runtime", SRC / "benchmarks") == set()


@pytest.mark.parametrize(
    "module", ["distbench.worker", "distbench.benchmarks", "distbench.worker.runtime"]
)
def test_each_side_imports_first_in_a_fresh_interpreter(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
