"""The ``distbench`` command. User errors are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from distbench import __version__
from distbench.cli import compare, runs
from distbench.cli.connection import exit_with
from distbench.errors import DistbenchError
from distbench.settings import Settings

app = typer.Typer(
    name="distbench",
    help="Benchmark distributed machine-learning training.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")

DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB "
        "[env DISTBENCH_DATABASE_URL; default: a SQLite file in the user's data directory]",
        show_default=False,
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    raise exit_with(message, code)


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"distbench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
) -> None:
    """Benchmark distributed machine-learning training."""


def build_settings(**given: Any) -> Settings:
    """Settings from the options given on the command line, then DISTBENCH_* variables."""
    chosen = {key: value for key, value in given.items() if value is not None}
    try:
        return Settings(**chosen)
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings: its input is all of them, token too
            fail(f"bad settings: {first['msg'].removeprefix('Value error, ')}", code=2)
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        # A refused token is still a secret: never echo it.
        given_value = "<hidden>" if key == "token" else repr(first.get("input"))
        fail(f"bad setting {key}={given_value}: {first['msg']}", code=2)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: 127.0.0.1]")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: 8000]")] = None,
    database_url: DatabaseUrlOption = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Require 'Authorization: Bearer TOKEN' on writes. Visible to anyone running "
            "ps: prefer --token-file or the DISTBENCH_TOKEN variable",
            show_default=False,
        ),
    ] = None,
    token_file: Annotated[
        str | None,
        typer.Option(
            help="Read the token from this file at start [env DISTBENCH_TOKEN_FILE]",
            show_default=False,
        ),
    ] = None,
    protect_reads: Annotated[
        bool,
        typer.Option(
            "--protect-reads",
            help="Reads need the token too (all of /api/ but /api/health, and /metrics)",
        ),
    ] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback address without a token")
    ] = False,
    release: Annotated[
        str | None, typer.Option(help="Release name in pod names and labels")
    ] = None,
    collect_interval: Annotated[
        float | None, typer.Option(help="Seconds between pod resource samples [default: 2]")
    ] = None,
    queue_runs: Annotated[
        bool,
        typer.Option(
            "--queue-runs",
            help="A run posted while another is active waits QUEUED for its turn instead of a "
            "409, unless it asks queue: false (for MLBench's client, which cannot ask to queue)",
        ),
    ] = False,
    allow_commands: Annotated[
        bool,
        typer.Option(
            "--allow-commands",
            help="Let token holders run their own commands as workers (needs --token)",
        ),
    ] = False,
    data_root: Annotated[
        str | None,
        typer.Option(
            help="The only folder whose files runs may name in their options (data sets) "
            "[default: DATA_DIR/datasets]"
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    backend: Annotated[
        str | None,
        typer.Option(help="Where workers run: local or kubernetes [default: local]"),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(help="kubernetes: namespace of the worker Jobs [default: the kubeconfig's]"),
    ] = None,
    worker_image: Annotated[
        str | None,
        typer.Option(help="kubernetes: container image of the worker pods (required)"),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option(help="kubernetes: kubeconfig file [default: in-cluster, ~/.kube/config]"),
    ] = None,
    advertise_url: Annotated[
        str | None,
        typer.Option(
            help="URL workers reach this server at (required with kubernetes: its Service)"
        ),
    ] = None,
    k8s_bandwidth: Annotated[
        str | None,
        typer.Option(
            help="kubernetes: enforce max_bandwidth by 'annotations' (CNI bandwidth plugin) "
            "or 'tc' (init container with NET_ADMIN) [default: annotations]"
        ),
    ] = None,
) -> None:
    """Start the server: the REST API under /api/ and the dashboard at /."""
    import uvicorn

    from distbench import data_lock
    from distbench.app import create_app, prepare_database

    settings = build_settings(
        host=host,
        port=port,
        database_url=database_url,
        token=token,
        token_file=token_file,
        protect_reads=protect_reads or None,
        insecure=insecure or None,
        release=release,
        collect_interval_s=collect_interval,
        data_root=data_root,
        allow_commands=allow_commands or None,
        queue_runs=queue_runs or None,
        backend=backend,
        namespace=namespace,
        worker_image=worker_image,
        kubeconfig=kubeconfig,
        advertise_url=advertise_url,
        k8s_bandwidth=k8s_bandwidth,
    )
    if not settings.is_loopback and settings.token is None and not settings.insecure:
        fail(
            f"refusing to listen on {settings.host} without a token: anyone who can reach it "
            "could start runs. Give a token (DISTBENCH_TOKEN or --token-file), or --insecure to "
            "accept that",
            code=2,
        )
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if log_level.lower() != "debug":
        # Alembic's "Context impl ..." lines would bury a refusal's one-line message.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        # Held until this process exits; a second server on the data directory stops here.
        data_lock.acquire(settings.data_dir, port=settings.port)
        prepare_database(settings)
    except DistbenchError as exc:
        fail(exc.message)
    from distbench.cli.demo import addresses

    for line in addresses(settings.advertised_url):
        typer.echo(line)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        # Access logs show paths only; the Authorization header is never logged.
        access_log=log_level == "debug",
    )


@app.command()
def demo(
    workers: Annotated[int, typer.Option(min=1, max=16, help="Workers to train with")] = 2,
    port: Annotated[int | None, typer.Option(help="Port to serve on [default: 8000]")] = None,
    database_url: DatabaseUrlOption = None,
    keep_serving: Annotated[
        bool,
        typer.Option(
            "--keep-serving/--exit",
            help="After the run, keep serving until Ctrl+C [default: when on a terminal]",
            show_default=False,
        ),
    ] = sys.stdin.isatty(),
) -> None:
    """Start the server, train `digits` on two workers with live progress, print the result."""
    from rich.console import Console

    from distbench import data_lock
    from distbench.cli.demo import run_demo

    settings = build_settings(port=port, database_url=database_url)
    logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
    try:
        data_lock.acquire(settings.data_dir, port=settings.port)
        code = run_demo(settings, workers=workers, keep_serving=keep_serving, console=Console())
    except DistbenchError as exc:
        fail(exc.message)
    raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOption = None) -> None:
    """Migrate the database to the schema this distbench needs."""
    from distbench.store import schema
    from distbench.store.engine import create_engine

    settings = build_settings(database_url=database_url)
    engine = create_engine(settings.database_url)
    try:
        before = schema.current_revision(engine)
        schema.upgrade(engine)
        after = schema.current_revision(engine)
    except Exception as exc:  # connection refused, permissions: one line, not a traceback
        fail(f"could not upgrade {engine.url.render_as_string(hide_password=True)}: {exc}")
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"database already at revision {after}")
    else:
        typer.echo(f"database upgraded from {before or 'empty'} to {after}")


@db_app.command("current")
def db_current(database_url: DatabaseUrlOption = None) -> None:
    """Show which database this reads, its schema revision and the one this distbench needs."""
    from sqlalchemy.engine import make_url

    from distbench.store import schema
    from distbench.store.engine import create_engine, is_sqlite

    settings = build_settings(database_url=database_url)
    url = make_url(settings.database_url)
    shown = url.render_as_string(hide_password=True)
    sqlite_file = url.database if is_sqlite(settings.database_url) else None
    # Opening a SQLite file creates it (and create_engine its folder): a look at a mistyped
    # path would leave an empty database behind and report it as merely "empty".
    if sqlite_file and sqlite_file != ":memory:" and not Path(sqlite_file).exists():
        fail(f"database {shown} does not exist (`distbench db upgrade` creates it)")
    engine = create_engine(settings.database_url)
    try:
        current = schema.current_revision(engine)
    except Exception as exc:
        fail(f"could not read {shown}: {exc}")
    finally:
        engine.dispose()
    typer.echo(f"database {shown}: {current or 'empty'}; needed: {schema.head_revision()}")


# The client commands, in the order `distbench --help` lists them.
app.command("run")(runs.run)
app.command("benchmarks")(runs.list_benchmarks)
app.command("runs")(runs.runs)
app.command("show")(runs.show)
app.command("abort")(runs.abort)
app.command("logs")(runs.logs)
app.command("export")(runs.export)
app.command("sweep")(compare.sweep)
app.command("compare")(compare.compare)


def main() -> None:
    app(prog_name="distbench")


if __name__ == "__main__":
    main()
