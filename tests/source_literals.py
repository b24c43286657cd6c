"""The string literals of distbench's own source, for tests that hold a contract to one owner
module: a second spelling of a state name or of a value encoder shows up here as a literal."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "distbench"


@dataclass(frozen=True)
class Literal:
    path: Path
    line: int
    value: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}: {self.value!r}"


def string_literals(*, outside: tuple[str, ...] = ()) -> Iterator[Literal]:
    """Every string constant in ``src/distbench`` (docstrings and the literal parts of
    f-strings included), except in the files and folders named by ``outside`` (paths relative
    to the package)."""
    skipped = [SRC / part for part in outside]
    for path in sorted(SRC.rglob("*.py")):
        if any(path == skip or skip in path.parents for skip in skipped):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                yield Literal(path, node.lineno, node.value)
