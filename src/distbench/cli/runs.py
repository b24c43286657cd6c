"""The client side of the CLI: start, watch, list, inspect, abort and export runs."""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from distbench.cli.connection import (
    DEFAULT_URL,
    JsonOption,
    TokenOption,
    UrlOption,
    cli_console,
    connected,
    exit_with,
    parse_options,
    print_json,
)
from distbench.cli.option_errors import GivenOptions
from distbench.client import Run, RunState


def command_and_dir(
    command: str | None, workdir: Path | None, benchmark: str | None
) -> tuple[list[str] | None, str | None]:
    """``--command`` split as a shell would, and its working directory made absolute (the
    server resolves nothing relative to the caller)."""
    if command is None:
        if workdir is not None:
            raise exit_with("--workdir goes with --command", 2)
        return None, None
    if benchmark is not None:
        raise exit_with("give --benchmark or --command, not both", 2)
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise exit_with(f"--command {command!r}: {exc}", 2) from None
    if not argv:
        raise exit_with('--command is empty: give the program to run, e.g. "python train.py"', 2)
    return argv, str((workdir or Path.cwd()).resolve())


def run(
    benchmark: Annotated[
        str | None, typer.Option(help="Benchmark task (distbench benchmarks) [default: digits]")
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help='Run this command as each worker instead of a task, e.g. "python train.py" '
            "(the server needs --allow-commands)"
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where --command runs, on the server's machine [default: here]"),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Number of workers")] = 2,
    cpus: Annotated[float, typer.Option(help="Cores per worker")] = 1.0,
    bandwidth: Annotated[
        float | None, typer.Option(help="Egress cap per worker, Mbit/s [default: none]")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name [default: from the settings]")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Task option key=value (repeatable)")
    ] = None,
    time_limit: Annotated[float | None, typer.Option(help="Fail the run after this many s")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the run and print its result")
    ] = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="If another run is active or queued, wait for it (QUEUED), not 409"
        ),
    ] = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Start a run; with --wait, show its progress and result (exit 1 unless it FINISHED).
    With --queue it waits its turn behind the runs before it."""
    options = parse_options(option or [])
    argv, working_dir = command_and_dir(command, workdir, benchmark)
    what = Path(argv[1] if len(argv) > 1 else argv[0]).name if argv else benchmark or "digits"
    label = name or f"{what} x{workers}, {cpus:g} CPU" + (
        f", {bandwidth:g} Mbit/s" if bandwidth is not None else ""
    )
    console = cli_console()
    with connected(url, token, GivenOptions(benchmark, options)) as client:
        started = client.start_run(
            name=label[:100],
            num_workers=workers,
            num_cpus=cpus,
            max_bandwidth=bandwidth,
            benchmark=benchmark,
            time_limit_s=time_limit,
            options=options,
            command=argv,
            working_dir=working_dir,
            queue=queue or None,
        )
        verb = "queued (it starts when the runs before it end)" if started.is_queued else "started"
        console.print(f"run {started.id} {verb}: {label}")
        if not wait:
            return
        from distbench.cli.watch import follow, print_result

        try:
            ended = follow(client, started, console)
        except KeyboardInterrupt:
            console.print(
                f"stopped watching; run {started.id} goes on (distbench abort {started.id})"
            )
            raise typer.Exit(130) from None
        print_result(client, ended, console)
    if ended.state != RunState.FINISHED:
        raise typer.Exit(1)


def list_benchmarks(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List the tasks a run can name, their options and the package each comes from."""
    from distbench.cli.benchmarks import print_benchmarks

    with connected(url, token) as client:
        tasks = client.benchmarks()
    if as_json:
        print_json([dataclasses.asdict(task) for task in tasks])
        return
    print_benchmarks(tasks, cli_console())


def runs(
    as_json: JsonOption = False, url: UrlOption = DEFAULT_URL, token: TokenOption = None
) -> None:
    """List runs, newest first."""
    with connected(url, token) as client:
        all_runs = client.runs()
    if as_json:
        print_json([item.raw for item in all_runs])
        return
    if not all_runs:
        typer.echo("no runs yet — start one with `distbench run --wait`")
        return
    table = Table()
    for column in (
        "id",
        "name",
        "state",
        "benchmark",
        "workers",
        "cpus",
        "Mbit/s",
        "created",
        "duration",
    ):
        table.add_column(column)
    for item in all_runs:
        table.add_row(
            str(item.id),
            item.name,
            item.state,
            item.benchmark or "",
            str(item.num_workers or ""),
            f"{item.num_cpus:g}" if item.num_cpus is not None else "",
            f"{item.max_bandwidth:g}" if item.max_bandwidth is not None else "-",
            item.created_at.astimezone().strftime("%Y-%m-%d %H:%M:%S"),
            _duration(item),
        )
    cli_console().print(table)


def _duration(item: Run) -> str:
    if item.started_at is None or item.finished_at is None:
        return ""
    return f"{(item.finished_at - item.started_at).total_seconds():.1f} s"


def show(
    run_id: Annotated[int, typer.Argument(help="The run's id")],
    as_json: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Show a run: configuration, limits, result, each pod's resource use and, for a failed
    run, the failing worker's last lines."""
    from distbench.cli.watch import print_result

    with connected(url, token) as client:
        item = client.run(run_id)
        if as_json:
            print_json(item.raw)
            return
        console = cli_console()
        print_result(client, item, console)
        console.print(f"options: {json.dumps(item.options, sort_keys=True)}")


def abort(
    run_id: Annotated[int, typer.Argument(help="The run's id")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Abort a run (its workers are stopped; its data is kept)."""
    with connected(url, token) as client:
        item = client.abort_run(run_id)
    typer.echo(f"run {item.id} is {item.state}")


def logs(
    run_id: Annotated[int, typer.Argument(help="The run's id")],
    tail: Annotated[int | None, typer.Option(min=1, help="Only the last N lines of each")] = None,
    pod: Annotated[str | None, typer.Option(help="Only this pod's output")] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Print each worker's output."""
    with connected(url, token) as client:
        by_pod = client.run_logs(run_id, tail=tail)
    if pod is not None:
        if pod not in by_pod:
            raise exit_with(
                f"run {run_id} has no pod {pod!r}; it has {', '.join(by_pod) or 'none'}"
            )
        by_pod = {pod: by_pod[pod]}
    for name, text in by_pod.items():
        typer.echo(f"==> {name} <==")
        typer.echo(text, nl=not text.endswith("\n"))


def export(
    run_id: Annotated[int, typer.Argument(help="The run's id")],
    fmt: Annotated[str, typer.Option("--format", help="csv, json or zip")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-O", help="File to write [default: stdout]")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
) -> None:
    """Export a run's metrics as CSV, JSON or a zip (MLBench's layout)."""
    if fmt not in ("csv", "json", "zip"):
        raise exit_with(f"--format {fmt!r}: choose csv, json or zip", 2)
    with connected(url, token) as client:
        data = client.export_run(run_id, fmt)  # type: ignore[arg-type]
    if output is None:
        if fmt == "zip" and sys.stdout.isatty():
            raise exit_with("a zip is binary: write it to a file with --output run.zip", 2)
        sys.stdout.buffer.write(data)
        return
    output.write_bytes(data)
    typer.echo(f"wrote {len(data)} bytes to {output}")
