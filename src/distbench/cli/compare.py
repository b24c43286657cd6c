"""Scaling studies from the CLI: ``sweep`` trains one run per worker count, ``compare`` tables
(and plots) runs that exist. Worker counts are numbers here: MLBench's charts sorted them as text,
so 16 came before 2."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from distbench.cli.connection import (
    DEFAULT_URL,
    TokenOption,
    UrlOption,
    cli_console,
    connected,
    exit_with,
    parse_options,
)
from distbench.cli.option_errors import GivenOptions
from distbench.client import Client, Run, RunSeries, RunState, numbers

# The series the last chart draws when --metric is not given.
DEFAULT_METRIC = "val_accuracy"


# -- the scaling table, computed from runs and their series (no I/O) ------------------------------
@dataclass(frozen=True, slots=True)
class Row:
    """One run's line of the scaling table. ``speedup`` and ``efficiency`` are against the
    baseline (the smallest worker count: 1 when it was run) and ``None`` when either side did
    not reach the target accuracy."""

    run_id: int
    workers: int
    state: str
    time_to_accuracy_s: float | None
    total_s: float | None
    samples_per_s: float | None
    compute_s: float
    communication_s: float
    speedup: float | None
    efficiency: float | None

    @property
    def communication_share(self) -> float | None:
        busy = self.compute_s + self.communication_s
        return self.communication_s / busy if busy > 0 else None


def parse_worker_counts(text: str) -> list[int]:
    """``"1,2,4"`` as ``[1, 2, 4]``, in the order given; ``ValueError`` naming the bad item."""
    counts: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise ValueError(
                f"--workers {text!r}: {item!r} is not a worker count (a whole number >= 1); "
                "write e.g. --workers 1,2,4"
            )
        counts.append(int(item))
    return counts


def _last(series: RunSeries, name: str) -> float | None:
    values = numbers(series.get(name, []))
    return values[-1] if values else None


def _total(series: RunSeries, name: str) -> float:
    return sum(numbers(series.get(name, [])))


def scaling_rows(runs: Sequence[Run], metrics: Mapping[int, RunSeries]) -> list[Row]:
    """The table's rows, sorted by worker count (as numbers), then run id.

    The baseline is the smallest worker count; with several runs at it, the mean of their times to
    accuracy. Efficiency is speedup over the ideal speedup ``n / baseline`` (``speedup / n`` when
    the baseline is one worker)."""
    for run in runs:
        if run.num_workers is None:
            raise ValueError(f"run {run.id} has no worker count: it cannot be compared")
    ordered = sorted(runs, key=lambda run: (run.num_workers or 0, run.id))
    tta = {run.id: _last(metrics.get(run.id, {}), "time_to_accuracy_s") for run in ordered}
    baseline_workers = (ordered[0].num_workers or 1) if ordered else 1
    reached = [
        value
        for run in ordered
        if run.num_workers == baseline_workers and (value := tta[run.id]) is not None
    ]
    baseline_s = statistics.fmean(reached) if reached else None
    rows = []
    for run in ordered:
        series = metrics.get(run.id, {})
        workers = run.num_workers or 1
        own = tta[run.id]
        speedup = baseline_s / own if baseline_s is not None and own else None
        total_s = (
            (run.finished_at - run.started_at).total_seconds()
            if run.started_at and run.finished_at
            else None
        )
        rows.append(
            Row(
                run_id=run.id,
                workers=workers,
                state=run.state,
                time_to_accuracy_s=own,
                total_s=total_s,
                samples_per_s=_last(series, "samples_per_s"),
                compute_s=_total(series, "compute_s"),
                communication_s=_total(series, "communication_s"),
                speedup=speedup,
                efficiency=None if speedup is None else speedup * baseline_workers / workers,
            )
        )
    return rows


def table_title(rows: Sequence[Row]) -> str:
    if not rows:
        return "scaling: no runs"
    baseline = rows[0].workers
    if baseline == 1:
        return "scaling: speedup against the 1-worker run"
    return (
        f"scaling: no 1-worker run, so speedup against the smallest count ({baseline} workers); "
        f"efficiency = speedup / (n / {baseline})"
    )


def _seconds(value: float | None, missing: str = "-") -> str:
    return missing if value is None else f"{value:.2f} s"


def scaling_table(rows: Sequence[Row]) -> Table:
    table = Table(title=table_title(rows))
    for column in ("workers", "run", "state", "time to accuracy", "total"):
        table.add_column(column, justify="right" if column != "state" else "left")
    for column in ("samples/s", "compute s", "comm. s", "comm. share", "speedup", "efficiency"):
        table.add_column(column, justify="right")
    for row in rows:
        share = row.communication_share
        table.add_row(
            str(row.workers),
            str(row.run_id),
            row.state,
            _seconds(row.time_to_accuracy_s, "not reached"),
            _seconds(row.total_s),
            "-" if row.samples_per_s is None else f"{row.samples_per_s:.0f}",
            f"{row.compute_s:.3f}",
            f"{row.communication_s:.3f}",
            "-" if share is None else f"{share:.0%}",
            "-" if row.speedup is None else f"{row.speedup:.2f}x",
            "-" if row.efficiency is None else f"{row.efficiency:.0%}",
        )
    return table


# -- sweep -----------------------------------------------------------------------------------------
def sweep(
    benchmark: Annotated[str, typer.Option(help="Benchmark task (see the README)")] = "digits",
    workers: Annotated[
        str, typer.Option(help="Worker counts, comma-separated, one run each: 1,2,4")
    ] = "1,2,4",
    cpus: Annotated[float, typer.Option(help="Cores per worker")] = 1.0,
    bandwidth: Annotated[
        float | None, typer.Option(help="Egress cap per worker, Mbit/s [default: none]")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Task option key=value (repeatable)")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Train one run per worker count, one after another, then print the scaling table
    (exit 1 unless every run FINISHED; Ctrl+C aborts the current run)."""
    try:
        counts = parse_worker_counts(workers)
    except ValueError as exc:
        raise exit_with(str(exc), 2) from None
    options = parse_options(option or [])
    console = cli_console()
    from distbench.cli.watch import follow

    ended: list[Run] = []
    with connected(url, token, GivenOptions(benchmark, options)) as client:
        label: str | None = None  # the run being started or followed
        try:
            for count in counts:
                label = (
                    f"{benchmark} sweep x{count}, {cpus:g} CPU"
                    + (f", {bandwidth:g} Mbit/s" if bandwidth is not None else "")
                )[:100]
                current = client.start_run(
                    name=label,
                    num_workers=count,
                    num_cpus=cpus,
                    max_bandwidth=bandwidth,
                    benchmark=benchmark,
                    options=options,
                )
                console.print(f"run {current.id} started: {label}")
                ended.append(follow(client, current, console))
                label = None
        except KeyboardInterrupt:
            if label is not None:
                _abort_named(client, label, console)
            _print_scaling(client, ended, console)
            raise typer.Exit(130) from None
        _print_scaling(client, ended, console)
    if any(run.state != RunState.FINISHED for run in ended):
        raise typer.Exit(1)


def _abort_named(client: Client, label: str, console: Console) -> None:
    # By name, not by the id start_run answers: Ctrl+C can land after the server created the
    # run but before its answer arrived, and that run must not train on unwatched.
    for run in client.runs():
        if run.is_active and run.name == label:
            stopped = client.abort_run(run.id)
            console.print(f"run {stopped.id} {stopped.state}; the sweep stopped")


def _print_scaling(client: Client, runs: Sequence[Run], console: Console) -> None:
    if runs:
        metrics = {run.id: client.run_metrics(run.id) for run in runs}
        console.print(scaling_table(scaling_rows(runs, metrics)))


# -- compare ---------------------------------------------------------------------------------------
def compare(
    run_ids: Annotated[
        list[int], typer.Argument(metavar="ID", help="The runs' ids", show_default=False)
    ],
    plot: Annotated[
        Path | None, typer.Option(help="Also write the charts to this PNG file", show_default=False)
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help=f"The series the last chart draws against time [default: {DEFAULT_METRIC}]",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Print the scaling table of existing runs of one task, by worker count; --plot writes the
    charts."""
    if plot is not None and plot.suffix.lower() != ".png":
        raise exit_with(f"--plot {str(plot)!r}: the charts are a PNG, name it e.g. scaling.png", 2)
    with connected(url, token) as client:
        runs = [client.run(run_id) for run_id in dict.fromkeys(run_ids)]
        metrics = {run.id: client.run_metrics(run.id) for run in runs}
    refuse_mixed_tasks(runs)
    if metric is not None:
        refuse_unknown_metric(metric, metrics)
    try:
        rows = scaling_rows(runs, metrics)
    except ValueError as exc:
        raise exit_with(str(exc)) from None
    cli_console().print(scaling_table(rows))
    if plot is not None:
        try:
            write_plot(plot, rows, runs, metrics, metric=metric or DEFAULT_METRIC)
        except OSError as exc:
            raise exit_with(f"could not write {plot}: {exc.strerror or exc}") from None
        typer.echo(f"wrote {plot}")


def refuse_mixed_tasks(runs: Sequence[Run]) -> None:
    """Speedup across tasks compares unrelated work: one task's runs only."""
    tasks = {run.benchmark for run in runs}
    if len(tasks) > 1:
        listed = ", ".join(f"run {run.id} is {run.benchmark or 'a command'}" for run in runs)
        raise exit_with(f"compare runs of one task: {listed}", 2)


def refuse_unknown_metric(metric: str, metrics: Mapping[int, RunSeries]) -> None:
    names = sorted({name for series in metrics.values() for name in series})
    if metric not in names:
        raise exit_with(
            f"--metric {metric!r}: these runs have no such series; they have "
            f"{', '.join(names) or 'none'}",
            2,
        )


# -- charts ----------------------------------------------------------------------------------------
def metric_unit(name: str) -> str:
    """The unit to print on an axis of ``name``'s values."""
    if name.endswith("_per_s"):
        return "samples/s" if name.startswith("samples") else "per s"
    if name.endswith("_s"):
        return "s"
    if "accuracy" in name:
        return "fraction, 0-1"
    if "loss" in name:
        return "nats"
    if name == "epoch":
        return "epochs"
    return "value"


def _start_of(run: Run, series: RunSeries) -> dt.datetime | None:
    if run.started_at is not None:
        return run.started_at
    firsts = [points[0].date for points in series.values() if points]
    return min(firsts) if firsts else None


def write_plot(
    path: Path,
    rows: Sequence[Row],
    runs: Sequence[Run],
    metrics: Mapping[int, RunSeries],
    *,
    metric: str = DEFAULT_METRIC,
) -> None:
    """Four charts in one PNG: speedup against workers (with the ideal), time to accuracy per
    run, compute and communication seconds per run, and ``metric`` against time for every run."""
    # Imported here: only --plot needs matplotlib, and the Agg canvas needs no display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    speedup_ax, tta_ax, split_ax, curve_ax = figure.subplots(2, 2).flat
    labels = [f"run {row.run_id}\n{row.workers} w" for row in rows]
    positions = list(range(len(rows)))
    baseline = rows[0].workers if rows else 1

    with_speedup = [row for row in rows if row.speedup is not None]
    counts = sorted({row.workers for row in rows})
    speedup_ax.plot(counts, [n / baseline for n in counts], "--", color="grey", label="ideal")
    speedup_ax.plot(
        [row.workers for row in with_speedup],
        [row.speedup for row in with_speedup],
        "o-",
        label="measured",
    )
    speedup_ax.set_xticks(counts)
    speedup_ax.set(
        title=f"Speedup to target accuracy (baseline: {baseline} worker{'s' * (baseline > 1)})",
        xlabel="workers (count)",
        ylabel="speedup (x baseline)",
    )
    speedup_ax.legend()
    speedup_ax.grid(alpha=0.3)

    times = [row.time_to_accuracy_s or 0.0 for row in rows]
    tta_ax.bar(positions, times, color="tab:green")
    for position, row in zip(positions, rows, strict=True):
        if row.time_to_accuracy_s is None:
            tta_ax.text(position, 0, "not\nreached", ha="center", va="bottom", fontsize=8)
    tta_ax.set_xticks(positions, labels)
    tta_ax.set(title="Time to target accuracy", xlabel="run", ylabel="time to accuracy (s)")
    tta_ax.grid(axis="y", alpha=0.3)

    compute = [row.compute_s for row in rows]
    split_ax.bar(positions, compute, label="compute", color="tab:blue")
    split_ax.bar(
        positions,
        [row.communication_s for row in rows],
        bottom=compute,
        label="communication",
        color="tab:orange",
    )
    split_ax.set_xticks(positions, labels)
    split_ax.set(
        title="Compute vs communication (sum over epochs)", xlabel="run", ylabel="time (s)"
    )
    split_ax.legend()
    split_ax.grid(axis="y", alpha=0.3)

    by_id = {run.id: run for run in runs}
    for row in rows:
        series = metrics.get(row.run_id, {})
        # Text points (MLBench's TaskResult sentence) have no place on the curve.
        points = [point for point in series.get(metric, []) if not isinstance(point.value, str)]
        start = _start_of(by_id[row.run_id], series)
        if not points or start is None:
            continue
        curve_ax.plot(
            [(point.date - start).total_seconds() for point in points],
            [point.value for point in points],
            "o-",
            markersize=3,
            label=f"run {row.run_id}: {row.workers} worker{'s' * (row.workers > 1)}",
        )
    curve_ax.set(
        title=f"{metric} during training",
        xlabel="time since the run started (s)",
        ylabel=f"{metric} ({metric_unit(metric)})",
    )
    if curve_ax.lines:
        curve_ax.legend()
    else:
        curve_ax.text(0.5, 0.5, f"no {metric} points", ha="center", transform=curve_ax.transAxes)
    curve_ax.grid(alpha=0.3)
    figure.savefig(path, format="png")
