"""What every client command shares: the server's address and token, one-line errors, and
the ``key=value`` task options. ``runs`` and ``compare`` both import it; neither imports the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from distbench.client import Client
from distbench.errors import DistbenchError

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
DEFAULT_URL = "http://127.0.0.1:8000"


def exit_with(message: str, code: int = 1) -> typer.Exit:
    """Print the one-line error; the caller raises the ``Exit`` this returns."""
    typer.echo(f"distbench: error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def connected(url: str, token: str | None) -> Iterator[Client]:
    """A client whose errors end the command with their one-line message."""
    try:
        with Client(url, token=token) as client:
            yield client
    except DistbenchError as exc:
        raise exit_with(exc.message) from None


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
