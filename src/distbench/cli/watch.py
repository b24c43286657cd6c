"""Following a run from a terminal: a live progress bar while it trains, then its result (and a
failed run's cause, in the failing worker's own output)."""

from __future__ import annotations

import datetime as dt
import json
import re
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from distbench import cadvisor
from distbench.client import END_STATES, Client, Run, RunPoint, RunSeries, RunState, numbers

# Enough to show a traceback's end or a usage error; `distbench logs` has the rest.
FAILURE_TAIL_LINES = 15


def follow(client: Client, run: Run, console: Console, *, poll_s: float = 0.5) -> Run:
    """Show the run's progress until it ends; returns the ended run."""
    max_epochs = int(run.options.get("max_epochs", 0)) or None
    since: dt.datetime | None = None
    latest: dict[str, float] = {}
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"run {run.id}", total=max_epochs, status=run.state)
        while run.state not in END_STATES:
            time.sleep(poll_s)
            run = client.run(run.id)
            series = client.run_metrics(run.id, since=since)
            for name, points in series.items():
                if points:
                    values = numbers(points)
                    if values:
                        latest[name] = values[-1]
                    last = points[-1].date
                    since = last if since is None or last > since else since
            progress.update(
                task,
                completed=latest.get("epoch", 0),
                status=_status_line(run.state, latest),
            )
        if run.state == RunState.FINISHED:
            # A run that reached its target early is complete, not stuck at epoch k of max.
            done = latest.get("epoch", 1)
            progress.update(task, total=done, completed=done)
    return run


def _status_line(state: str, latest: dict[str, float]) -> str:
    if state == RunState.QUEUED:
        return f"{RunState.QUEUED}: waits for the runs before it to end"
    parts = [state]
    if "epoch" in latest:
        parts.append(f"epoch {latest['epoch']:.0f}")
    if "train_loss" in latest:
        parts.append(f"loss {latest['train_loss']:.4f}")
    if "val_accuracy" in latest:
        parts.append(f"val acc {latest['val_accuracy']:.2%}")
    if "samples_per_s" in latest:
        parts.append(f"{latest['samples_per_s']:.0f} samples/s")
    return "  ".join(parts)


def print_result(client: Client, run: Run, console: Console) -> None:
    """The result table; for a failed run, also its cause in the failing worker's own words."""
    console.print(result_table(client, run))
    if run.state == RunState.FAILED:
        for line in failure_cause(run):
            # Text, not markup: a log line's "[Errno 2]" or "[c10d]" is not a style tag. No wrap,
            # so a path in the line stays whole for a reader and for grep.
            console.print(Text(line), soft_wrap=True)


def failure_cause(run: Run) -> list[str]:
    """The last lines of the failed worker's output (the server keeps them in
    ``job_metadata["worker_log_tails"]``), then where the whole output is."""
    tails: dict[str, str] = run.job_metadata.get("worker_log_tails") or {}
    error = str(run.job_metadata.get("error", ""))
    # The error names the worker that failed first; the others mostly echo its failure. A whole
    # name: worker-1-1 is not the worker-1-10 an error names.
    named = [pod for pod in tails if re.search(rf"{re.escape(pod)}\b", error)]
    lines: list[str] = []
    for pod in named or list(tails):
        output = tails[pod].rstrip().splitlines()[-FAILURE_TAIL_LINES:]
        if output:
            lines.append(f"last lines of {pod}:")
            lines.extend(f"  {line}" for line in output)
        else:
            lines.append(f"{pod} printed nothing")
    lines.append(f"all of the workers' output: distbench logs {run.id}")
    return lines


def result_table(client: Client, run: Run) -> Table:
    """The run's outcome: state, time to accuracy, throughput, compute/communication split,
    all-reduce bandwidth by message size, the limits applied, and each pod's resource use."""
    series = client.run_metrics(run.id)

    def last(name: str) -> float | None:
        values = numbers(series.get(name, []))
        return values[-1] if values else None

    def total(name: str) -> float:
        return sum(numbers(series.get(name, [])))

    table = Table(title=f"run {run.id}: {run.name}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("state", run.state)
    if run.started_at and run.finished_at:
        table.add_row("duration", f"{(run.finished_at - run.started_at).total_seconds():.1f} s")
    table.add_row("benchmark", f"{run.benchmark} on {run.num_workers} workers")
    tta = last("time_to_accuracy_s")
    target = run.options.get("target_accuracy")
    if target is not None:
        reached = f"{tta:.2f} s" if tta is not None else "target not reached"
        table.add_row(f"time to {float(target):.0%} accuracy", reached)
    elif tta is not None:
        # A command with a target of its own, which it declared reached (target_reached()).
        table.add_row("time to accuracy", f"{tta:.2f} s")
    for name, label, fmt in (
        ("val_accuracy", "final validation accuracy", "{:.2%}"),
        ("train_loss", "final training loss", "{:.4f}"),
        ("samples_per_s", "throughput (last epoch)", "{:.0f} samples/s"),
    ):
        value = last(name)
        if value is not None:
            table.add_row(label, fmt.format(value))
    compute, communication = total("compute_s"), total("communication_s")
    if compute + communication > 0:
        share = communication / (compute + communication)
        table.add_row(
            "compute / communication",
            f"{compute:.2f} s / {communication:.2f} s ({share:.0%} communicating)",
        )
    for size_label, timing in allreduce_rows(series, run.max_bandwidth):
        table.add_row(size_label, timing)
    for key, value in run.job_metadata.get("limits", {}).items():
        table.add_row(f"limit: {key}", str(value))
    if run.state == RunState.FAILED:
        table.add_row("error", Text(str(run.job_metadata.get("error", ""))))
    for pod_name in run.job_metadata.get("pods", []):
        pod = client.pod_metrics(pod_name)
        cpu = numbers(pod.get(cadvisor.CPU_SECONDS, []))
        sent = numbers(pod.get(cadvisor.TRANSMIT_BYTES, []))
        memory = numbers(pod.get(cadvisor.MEMORY_BYTES, []))
        facts = []
        if cpu:
            facts.append(f"{cpu[-1]:.1f} CPU-s")
        if memory:
            facts.append(f"{max(memory) / 2**20:.0f} MiB peak")
        if sent:
            facts.append(f"{sent[-1] / 1e6:.1f} MB sent")
        table.add_row(f"pod {pod_name}", ", ".join(facts) or "no samples")
    return table


def allreduce_rows(series: RunSeries, cap_mbit: float | None) -> list[tuple[str, str]]:
    """One row per message size an all-reduce was timed at (the ``allreduce`` task, or any
    run reporting ``allreduce_time_s`` tagged ``{"bytes": N}``): its time, its bus bandwidth,
    and that bandwidth as a share of the egress cap when the run has one."""
    times = _by_size(series.get("allreduce_time_s", []))
    bus = _by_size(series.get("bus_bandwidth_mbit", []))
    rows = []
    for size in sorted(times.keys() | bus.keys()):
        facts = []
        if size in times:
            facts.append(f"{times[size] * 1e3:.3f} ms")
        if size in bus:
            facts.append(f"bus bandwidth {bus[size]:,.1f} Mbit/s")
            if cap_mbit:
                facts.append(f"{bus[size] / cap_mbit:.0%} of the {cap_mbit:g} Mbit/s cap")
        rows.append((f"all-reduce {_size(size)}", ", ".join(facts)))
    return rows


def _by_size(points: list[RunPoint]) -> dict[int, float]:
    """The last numeric value for each message size in the points' ``{"bytes": N}`` tags."""
    values: dict[int, float] = {}
    for point in points:
        if isinstance(point.value, str):
            continue
        try:
            size = json.loads(point.metadata or "{}").get("bytes")
        except (ValueError, AttributeError):
            continue  # metadata a command wrote as it liked: not a size
        if isinstance(size, int):
            values[size] = point.value
    return values


def _size(size_bytes: int) -> str:
    """``1 KiB``, ``64 MiB``; sizes that are not a whole number of units stay in bytes."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= factor and size_bytes % factor == 0:
            return f"{size_bytes // factor} {unit}"
    return f"{size_bytes} B"
