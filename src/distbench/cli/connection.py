"""What every client command shares: the server's address and token, one-line errors, and
the ``key=value`` task options. ``runs`` and ``compare`` both import it; neither imports the other.

The API's messages speak HTTP (headers, ``DELETE /api/runs/N/``), which is right for its
clients; a CLI user needs the option or command that fixes it, so this module rewrites the
messages of the errors a CLI user meets from their codes and details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from distbench.cli.option_errors import GivenOptions, explain, option_problems
from distbench.client import Client, ServerUnreachable
from distbench.errors import (
    DistbenchError,
    Forbidden,
    InvalidInput,
    NotFound,
    RunActive,
    Unauthenticated,
)

UrlOption = Annotated[
    str,
    typer.Option(
        "--url", envvar="DISTBENCH_URL", help="The server [env DISTBENCH_URL]", show_default=True
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="DISTBENCH_TOKEN",
        help="Bearer token for writes [env DISTBENCH_TOKEN]",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON instead of a table (for scripts)")
]
DEFAULT_URL = "http://127.0.0.1:8000"
# Wide enough that no table is cut or wrapped: a pipe has no width, and rich's 80-column
# default would cut the state to `FINISH…`, so `distbench runs | grep FINISHED` found nothing.
PIPE_WIDTH = 10_000


def cli_console() -> Console:
    """Rich's console: the terminal's width on a terminal, no cut when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def exit_with(message: str, code: int = 1) -> typer.Exit:
    """Print the one-line error; the caller raises the ``Exit`` this returns."""
    typer.echo(f"distbench: error: {message}", err=True)
    return typer.Exit(code)


def server_url(url: str) -> str:
    """The server's address from ``--url``: the demo prints the API's (``.../api/``), and
    users paste that, so a trailing ``/api`` is the same server."""
    return url.rstrip("/").removesuffix("/api")


def cli_message(exc: DistbenchError, *, url: str, token: str | None) -> str:
    """The error's message, with the CLI's way out where the API's names an HTTP one."""
    if isinstance(exc, Unauthenticated):
        return (
            "this server needs its token here: give the token it was started with as "
            "--token TOKEN or in the DISTBENCH_TOKEN variable"
        )
    if isinstance(exc, Forbidden) and token is not None and "token is not valid" in exc.message:
        return (
            "the token given (--token or DISTBENCH_TOKEN) is not valid for this server: "
            "give the one it was started with"
        )
    if isinstance(exc, RunActive):
        return _run_active_message(exc)
    if isinstance(exc, ServerUnreachable):
        return (
            f"{exc.message}. Is it running? Start one with `distbench serve`, or give its "
            "address with --url or DISTBENCH_URL"
        )
    if isinstance(exc, NotFound) and not exc.details:  # a path, not a run, was not found
        return (
            f"{exc.message}; is {url} a distbench server's address? --url takes it without "
            f"the path, e.g. {DEFAULT_URL}"
        )
    return exc.message


def _run_active_message(exc: RunActive) -> str:
    active = exc.details.get("active_run_id")
    if isinstance(active, int):
        return (
            f"run {active} is still active: wait for it to end or abort it with "
            f"`distbench abort {active}` before starting another (or add --queue to start "
            "this one after it)"
        )
    waiting = exc.details.get("queued_run_ids")
    if isinstance(waiting, list) and waiting:
        return (
            f"{len(waiting)} run(s) wait in the queue (first: run {waiting[0]}): add --queue "
            f"to start this one after them, or abort them with `distbench abort {waiting[0]}`"
        )
    return exc.message


@contextmanager
def connected(url: str, token: str | None, given: GivenOptions | None = None) -> Iterator[Client]:
    """A client whose errors end the command with their one-line message; ``given``, the task
    and options a run is started with, lets a refusal of its options say how to write them."""
    base = server_url(url)
    try:
        with Client(base, token=token) as client:
            try:
                yield client
            except InvalidInput as exc:
                problems = option_problems(exc)
                if given is None or not problems:
                    raise
                tasks = {task.name: task for task in client.benchmarks()}
                if given.task_name not in tasks:
                    raise
                raise exit_with(explain(problems, tasks[given.task_name], given), 2) from None
    except DistbenchError as exc:
        raise exit_with(cli_message(exc, url=base, token=token)) from None


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, lists, true)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise exit_with(f"--option {pair!r}: write it as key=value, e.g. --option seed=3", 2)
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options
