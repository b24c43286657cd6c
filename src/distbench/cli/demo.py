"""``distbench demo``: the whole system in one command, on the embedded defaults.

Starts the server (SQLite in the data directory, local workers), trains ``digits`` on two
workers with a live progress bar, prints the result, and says where the server is.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from rich.console import Console

from distbench.app import create_app, prepare_database
from distbench.backends.local.limits.network import namespaces_available
from distbench.cli.watch import follow, result_table
from distbench.client import Client, RunState
from distbench.errors import RunActive
from distbench.settings import Settings

DEMO_BANDWIDTH_MBIT = 100.0


@dataclass
class ServerInThread:
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start_server(settings: Settings) -> ServerInThread:
    prepare_database(settings)
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start (see the messages above)")
        time.sleep(0.05)
    return ServerInThread(server, thread)


def addresses(url: str) -> list[str]:
    """Where a user looks, dashboard first: the API's address alone sent newcomers to JSON."""
    return [f"dashboard: {url}/", f"API: {url}/api/ (OpenAPI: {url}/openapi.json)"]


def run_demo(settings: Settings, *, workers: int, keep_serving: bool, console: Console) -> int:
    """Returns the exit status: 0 when the run finished with its target reached."""
    if not port_is_free(settings.host, settings.port):
        console.print(f"port {settings.port} is taken; choose another with --port")
        return 2
    console.print(f"database: {settings.database_url}")
    running = start_server(settings)
    url = settings.advertised_url
    for line in addresses(url):
        console.print(line)
    cap = DEMO_BANDWIDTH_MBIT if namespaces_available() is None else None
    try:
        with Client(
            url, token=settings.token.get_secret_value() if settings.token else None
        ) as api:
            try:
                run = api.start_run(
                    name=f"demo: digits on {workers} workers",
                    num_workers=workers,
                    num_cpus=1,
                    max_bandwidth=cap,
                    benchmark="digits",
                )
            except RunActive as exc:
                console.print(f"[red]{exc.message}[/red]")
                return 1
            limit = f", {cap:g} Mbit/s each" if cap else " (no bandwidth cap: not root)"
            console.print(f"run {run.id}: digits on {workers} workers, 1 CPU{limit}")
            run = follow(api, run, console)
            console.print(result_table(api, run))
            reached = bool(api.run_metrics(run.id, metric_filter="time_to_accuracy_s"))
        console.print(
            f"metrics: {url}/api/metrics/{run.id}/?metric_type=run   "
            f"pods: {url}/api/metrics/   logs: {url}/api/runs/{run.id}/logs"
        )
        if keep_serving:
            console.print(f"serving the dashboard at {url}/ — press Ctrl+C to stop")
            try:
                while running.thread.is_alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0 if run.state == RunState.FINISHED and reached else 1
    finally:
        running.stop()
