"""MLBench's way of asking for a run, in distbench's terms.

MLBench's ``create_run`` names an image (``image_name``, or ``custom_image`` with a command),
``gpu_enabled`` and ``light_target``; distbench runs a task (``benchmark``) with ``options`` and
``gpu``, or a ``command``. ``translate`` turns the first into the second and says in
``job_metadata`` where the run came from, so the user sees why it runs what it runs.

It also sends ``max_bandwidth=1000`` with every run, whether its user asked for a cap or not.
``uncap_if_unenforceable`` lets such a request start on a server that cannot cap bandwidth, with
the cap recorded as not enforced; a cap asked for through distbench's own interfaces stays a 400
(``serve`` refuses what it cannot enforce).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from distbench.api.schemas import RunCreate
from distbench.benchmarks import mlbench_images
from distbench.errors import InvalidInput, LimitUnsupported
from distbench.store.records import NewRun


def _refuse(field: str, message: str, why: str) -> InvalidInput:
    return InvalidInput(message, details={"errors": [{"field": field, "message": why}]})


def is_mlbench_form(spec: RunCreate, *, from_form: bool) -> bool:
    """A request shaped as MLBench's ``create_run`` sends it: a form that names an image."""
    return from_form and spec.image_name is not None


def translate(spec: RunCreate, *, installed_tasks: list[str]) -> tuple[RunCreate, dict[str, Any]]:
    """``spec`` with MLBench's fields turned into distbench's, and the ``job_metadata`` that
    records them. Fields that contradict each other are a 400, never a guess."""
    update: dict[str, Any] = {}
    if spec.gpu_enabled is not None:
        if "gpu" in spec.model_fields_set and spec.gpu != spec.gpu_enabled:
            raise _refuse(
                "gpu_enabled",
                f"gpu={str(spec.gpu).lower()} and gpu_enabled={str(spec.gpu_enabled).lower()} "
                "disagree: send one of them",
                "disagrees with gpu",
            )
        update["gpu"] = spec.gpu_enabled
    if spec.image_name is None:
        for field in ("custom_image_name", "custom_image_command"):
            if getattr(spec, field) is not None:
                raise _refuse(
                    field,
                    f"{field} needs image_name={mlbench_images.CUSTOM_IMAGE}",
                    "needs image_name",
                )
        if spec.light_target:
            raise _refuse(
                "light_target",
                "light_target=true selects the light goal of an MLBench image: send image_name "
                "too, or set the task's options (e.g. target_accuracy) yourself",
                "needs image_name",
            )
        return spec.model_copy(update=update), {}
    if spec.image_name.strip() == mlbench_images.CUSTOM_IMAGE:
        update["command"], origin, warnings = _custom_image(spec)
    else:
        update["benchmark"], update["options"], origin, warnings = _task_image(
            spec, installed_tasks
        )
    metadata: dict[str, Any] = {"mlbench": origin}
    if warnings:
        metadata["warnings"] = warnings
    return spec.model_copy(update=update), metadata


def _custom_image(spec: RunCreate) -> tuple[list[str], dict[str, Any], list[str]]:
    if spec.custom_image_command is None:
        raise _refuse(
            "custom_image_command",
            f"image_name={mlbench_images.CUSTOM_IMAGE} needs custom_image_command: the command "
            "each worker runs, e.g. 'python train.py --rank {rank} --hosts {hosts}'",
            "missing",
        )
    if spec.command is not None:
        raise _refuse(
            "command",
            "custom_image_command and command both name the command to run: send one",
            "not with custom_image_command",
        )
    try:
        argv = shlex.split(spec.custom_image_command)
    except ValueError as exc:
        raise _refuse(
            "custom_image_command",
            f"custom_image_command cannot be split into words as a shell would ({exc}): "
            "close its quotes",
            "unbalanced quotes",
        ) from exc
    if not argv:
        raise _refuse("custom_image_command", "custom_image_command is blank", "blank")
    origin = {
        "image_name": mlbench_images.CUSTOM_IMAGE,
        "custom_image_name": spec.custom_image_name,
        "custom_image_command": spec.custom_image_command,
    }
    warnings = []
    if spec.custom_image_name:
        warnings.append(
            f"the command runs in the server's worker environment, not in the image "
            f"{spec.custom_image_name!r} (distbench starts no containers here)"
        )
    if spec.light_target:
        warnings.append("light_target applies to MLBench's images, not to a custom command")
    return argv, origin, warnings


def _task_image(
    spec: RunCreate, installed_tasks: list[str]
) -> tuple[str, dict[str, Any], dict[str, Any], list[str]]:
    assert spec.image_name is not None
    entry = mlbench_images.lookup(spec.image_name, installed_tasks=installed_tasks)
    assert entry.task is not None  # lookup returns only images with a task
    if spec.benchmark is not None and spec.benchmark != entry.task:
        raise _refuse(
            "benchmark",
            f"benchmark={spec.benchmark!r} and image_name={spec.image_name!r} (the task "
            f"{entry.task!r}) disagree: send one of them",
            "disagrees with image_name",
        )
    if spec.command is not None:
        raise _refuse(
            "command",
            f"image_name={spec.image_name!r} runs the task {entry.task!r}: a run has either a "
            f"task or a command (for a command, send image_name={mlbench_images.CUSTOM_IMAGE})",
            "not with image_name",
        )
    goal = entry.light_goal if spec.light_target else entry.full_goal
    options = dict(spec.options)
    # Options the caller set themselves win over the image's goal.
    options.update({name: value for name, value in goal.items() if name not in spec.options})
    origin: dict[str, Any] = {
        "image_name": spec.image_name,
        "image": entry.image,
        "task": entry.task,
        "light_target": spec.light_target,
    }
    if goal:
        origin["goal"] = "light" if spec.light_target else "full"
        origin["goal_options"] = {name: options[name] for name in goal}
    warnings = [entry.caveat] if entry.caveat else []
    if spec.light_target and not goal:
        warnings.append(f"light_target: the task {entry.task!r} has no accuracy goal to lighten")
    return entry.task, options, origin, warnings


def uncap_if_unenforceable(check: Callable[[NewRun], None], new: NewRun) -> NewRun:
    """``new`` as it is if ``check`` (the backend's) accepts its bandwidth cap; else ``new``
    without the cap, and ``job_metadata`` saying so with a warning. Any other limit the backend
    refuses stays a 400.

    For requests in MLBench's form only: its client sends ``max_bandwidth=1000`` whatever its
    user asked, so refusing it would make every MLBench run a 400 on such a server."""
    if new.max_bandwidth is None:
        return new
    try:
        check(new)
    except LimitUnsupported as refused:
        uncapped = replace(new, max_bandwidth=None)
        check(uncapped)  # the cap was not all it refused: that answer stands
        cap = new.max_bandwidth
        metadata = dict(new.job_metadata)
        metadata["bandwidth_cap"] = {
            "requested_mbit": cap,
            "enforced": False,
            "reason": refused.message,
        }
        metadata["warnings"] = [
            *metadata.get("warnings", []),
            f"max_bandwidth={cap:g} Mbit/s (sent by MLBench's client) was not enforced: "
            f"the run is uncapped. {refused.message}",
        ]
        return replace(uncapped, job_metadata=metadata)
    return new
