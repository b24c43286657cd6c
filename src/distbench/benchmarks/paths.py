"""Which files a run may make the server's workers read: only those under the data root the
operator configured (``serve --data-root``, ``DISTBENCH_DATA_ROOT``).

A task marks its path options with ``DataFile`` or ``DataDir``; ``confine`` checks them before a
run starts (a 400 otherwise) and again in each worker. Without the root, any caller could make the
workers read any file the server's user can (``/etc/shadow`` through an error message) or unpickle
a file of their choosing. The answer for a path outside the root is decided on the text of the
path alone, so it says nothing about what exists outside the root.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from distbench.benchmarks.base import TaskOptions
from distbench.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class DataPath:
    """Marks an option as a path under the data root. ``file``: an existing regular file when
    the run starts; ``dir``: a folder that may not exist yet (a download creates it)."""

    kind: Literal["file", "dir"]


# Relative values are taken from the data root; the stored options hold the resolved path.
DataFile = Annotated[str, DataPath("file")]
DataDir = Annotated[str, DataPath("dir")]

Options = TypeVar("Options", bound=TaskOptions)


def _marker(metadata: list[Any]) -> DataPath | None:
    return next((item for item in metadata if isinstance(item, DataPath)), None)


def path_options(options: type[TaskOptions]) -> dict[str, DataPath]:
    """The options of a task that name paths, by name."""
    found: dict[str, DataPath] = {}
    for name, field in options.model_fields.items():
        marker = _marker(field.metadata)
        if marker is None and field.annotation is not None:
            # ``DataFile | None`` keeps the marker inside the union's member.
            for member in getattr(field.annotation, "__args__", ()):
                marker = marker or _marker(list(getattr(member, "__metadata__", ())))
        if marker is not None:
            found[name] = marker
    return found


def _refuse(name: str, message: str) -> InvalidInput:
    return InvalidInput(
        f"options.{name}: {message}",
        details={"errors": [{"field": f"options.{name}", "message": message}]},
    )


def _within(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def confine_path(name: str, value: str, marker: DataPath, *, data_root: Path) -> str:
    """``value`` as an absolute path with symlinks and ``..`` resolved, if it lies under
    ``data_root``; ``InvalidInput`` otherwise."""
    if "\x00" in value:  # no file system call takes it (and realpath would raise)
        raise _refuse(name, "a path cannot contain a NUL character")
    given = os.path.abspath(data_root.expanduser())
    real_root = os.path.realpath(given)
    roots = (given, real_root)
    candidate = os.path.normpath(os.path.join(given, value))
    # First on the text alone (``..`` collapsed): the answer for anything outside the root must
    # not depend on what exists there. Then on the real path: a symlink under the root may not
    # lead out of it.
    outside = _refuse(
        name,
        f"{value!r} is outside the data root: runs may only name paths under {real_root} "
        "(relative paths are taken from there; the operator sets it with serve --data-root "
        "or DISTBENCH_DATA_ROOT)",
    )
    if not _within(candidate, roots):
        raise outside
    resolved = os.path.realpath(candidate)
    if not _within(resolved, (real_root,)):
        raise outside
    if marker.kind == "file" and not os.path.isfile(resolved):
        raise _refuse(name, f"no such file under the data root {real_root}: {value!r}")
    if marker.kind == "dir" and os.path.exists(resolved) and not os.path.isdir(resolved):
        raise _refuse(name, f"{value!r} under the data root {real_root} is not a folder")
    return resolved


def confine(options: Options, *, data_root: Path) -> Options:
    """``options`` with each path option resolved under ``data_root``, or ``InvalidInput``."""
    resolved: dict[str, str] = {}
    for name, marker in path_options(type(options)).items():
        value = getattr(options, name)
        if value is not None:
            resolved[name] = confine_path(name, value, marker, data_root=data_root)
    return options.model_copy(update=resolved)
