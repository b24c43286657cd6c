"""Finding a contract's second spelling: the string literals of ``src/`` (f-strings' literal
parts included), for tests that hold each cross-process name to the one module that owns it."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "distbench"


def string_literals(path: Path) -> Iterator[tuple[int, str]]:
    """Every string constant in ``path``, with its line."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def spellings_outside(
    matches: Callable[[str], bool], *, owners: set[str], root: Path = SRC
) -> list[str]:
    """``file:line: literal`` for each literal that ``matches`` in a module of ``root`` other
    than ``owners`` (paths relative to ``root``)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if relative in owners:
            continue
        for line, value in string_literals(path):
            if matches(value):
                found.append(f"{relative}:{line}: {value!r}")
    return found
