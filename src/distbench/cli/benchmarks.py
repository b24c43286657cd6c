"""``distbench benchmarks``: each task with where it comes from and its options."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

from distbench.client import Benchmark


def _type_of(schema: dict[str, Any]) -> str:
    if "type" in schema:
        kind = str(schema["type"])
        if kind == "array" and isinstance(schema.get("items"), dict):
            return f"list of {_type_of(schema['items'])}"
        return kind
    if "enum" in schema:
        return " | ".join(map(str, schema["enum"]))
    variants = schema.get("anyOf") or schema.get("oneOf") or []
    kinds = [_type_of(v) for v in variants if isinstance(v, dict)]
    return " | ".join(kinds) if kinds else "any"


def options_table(task: Benchmark) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None)
    for column in ("option", "type", "default", "description"):
        table.add_column(column)
    properties: dict[str, Any] = task.options.get("properties", {})
    for option, schema in properties.items():
        default = json.dumps(task.defaults.get(option))
        if len(default) > 40:
            default = default[:37] + "..."
        table.add_row(option, _type_of(schema), default, str(schema.get("description", "")))
    return table


def print_benchmarks(tasks: list[Benchmark], console: Console) -> None:
    for task in tasks:
        origin = "built-in" if task.builtin else "plugin"
        if task.status != "ok":
            console.print(f"[bold red]{task.name}[/] — BROKEN plugin ({task.source}): {task.error}")
            console.print()
            continue
        console.print(f"[bold]{task.name}[/] — {origin}, from {task.source}")
        console.print(f"  {task.description}")
        if task.options.get("properties"):
            console.print(options_table(task))
        console.print()
