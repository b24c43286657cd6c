"""Where tasks come from: every installed package that declares an entry point in the group
``distbench.benchmarks``, distbench itself included (its built-in tasks are registered in its own
pyproject.toml exactly as a plugin's are).

A plugin that cannot be loaded (its module fails to import, its entry point names something that
is not a ``BenchmarkSpec``, its options cannot be described) is kept aside as ``Broken``, with the
reason, so the server still starts, the other tasks still run, and ``GET /api/benchmarks`` names
the broken one instead of silently leaving it out.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from distbench.benchmarks.base import BenchmarkSpec, TaskOptions

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "distbench.benchmarks"
OWN_DISTRIBUTION = "distbench"
# The ``benchmark`` of a custom command run: no task may take the name.
COMMAND_BENCHMARK = "command"
TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
ENTRY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PluginError(Exception):
    """A plugin's entry point does not describe a usable task."""


@dataclass(frozen=True, slots=True)
class Registered:
    spec: BenchmarkSpec
    source: str  # the distribution that declared it, with its version: "distbench 0.1.0"
    builtin: bool


@dataclass(frozen=True, slots=True)
class Broken:
    name: str
    source: str
    error: str


@dataclass(frozen=True, slots=True)
class Registry:
    tasks: dict[str, Registered] = field(default_factory=dict)
    broken: list[Broken] = field(default_factory=list)


def _source(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.name} {dist.version}" if dist is not None else entry.value


def _is_own(entry: EntryPoint) -> bool:
    return entry.dist is not None and entry.dist.name == OWN_DISTRIBUTION


def check_spec(spec: object, *, registered_as: str) -> BenchmarkSpec:
    """``spec`` if it is a task the server can list, check and start; else ``PluginError``."""
    if not isinstance(spec, BenchmarkSpec):
        raise PluginError(
            f"the entry point names a {type(spec).__name__}, not a "
            "distbench.benchmarks.BenchmarkSpec"
        )
    if spec.name != registered_as:
        raise PluginError(
            f"the entry point is called {registered_as!r} but its task is called "
            f"{spec.name!r}: they must be the same"
        )
    if not TASK_NAME.match(spec.name):
        raise PluginError(
            f"task name {spec.name!r} must be 1-100 lower-case letters, digits, '.', '_' or '-'"
        )
    if not ENTRY.match(spec.entry):
        raise PluginError(f"entry {spec.entry!r} must be 'package.module:function'")
    if not (isinstance(spec.options, type) and issubclass(spec.options, TaskOptions)):
        raise PluginError("options must be a subclass of distbench.benchmarks.TaskOptions")
    try:
        spec.options.model_json_schema()
    except Exception as exc:
        raise PluginError(f"its options have no JSON Schema: {exc}") from exc
    try:
        spec.options.model_validate({}).model_dump(mode="json")
    except Exception as exc:
        # A run started with no options (the dashboard's default) must be valid.
        raise PluginError(f"every option needs a default: {exc}") from exc
    return spec


def discover() -> Registry:
    """Load every task of the group. Built-ins first, so a plugin cannot take their names."""
    registry = Registry()
    found = sorted(
        entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _is_own(e), e.name, e.value)
    )
    for entry in found:
        source = _source(entry)
        try:
            spec = check_spec(entry.load(), registered_as=entry.name)
            if spec.name == COMMAND_BENCHMARK:
                raise PluginError(f"{COMMAND_BENCHMARK!r} is reserved for custom command runs")
            taken = registry.tasks.get(spec.name)
            if taken is not None:
                raise PluginError(f"the name {spec.name!r} is already taken by {taken.source}")
        except Exception as exc:  # a plugin's import can raise anything; none may stop us
            error = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            error = " ".join(error.split())  # pydantic's messages span lines; one line here
            log.error("benchmark plugin %r (%s) is broken: %s", entry.name, source, error)
            registry.broken.append(Broken(name=entry.name, source=source, error=error))
            continue
        registry.tasks[spec.name] = Registered(spec=spec, source=source, builtin=_is_own(entry))
    if not any(task.builtin for task in registry.tasks.values()):
        log.error(
            "no built-in benchmark tasks found: distbench is not installed as a package "
            "(its entry points are missing); install it with pip install -e ."
        )
    return registry


_lock = threading.Lock()
_current: Registry | None = None


def current() -> Registry:
    """The tasks found by the last ``reload`` (the first call discovers them)."""
    global _current
    with _lock:
        if _current is None:
            _current = discover()
        return _current


def reload() -> Registry:
    """Discover the tasks again (the server does at start, so a newly installed plugin shows)."""
    global _current
    registry = discover()
    with _lock:
        _current = registry
    return registry
