"""What a graceful stop (SIGTERM) of the server does with an active run: it leaves the run's
workers running and the run STARTED, says so in its log, and a restart adopts the run."""

from __future__ import annotations

import signal
import time

from distbench.store import runs as run_store
from distbench.store.engine import create_engine
from tests.backends.local_helpers import (
    ENDLESS,
    LocalServers,
    assert_cleaned_up,
    get_run,
    is_running,
    run_metric_names,
    started_run,
    wait_for,
    worker_pids,
)


def stored_state(database_url: str, run_id: int) -> str:
    """The run's state in the database, read with no server running."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return run_store.get_run(conn=conn, run_id=run_id).state
    finally:
        engine.dispose()


def test_sigterm_leaves_the_run_running_and_a_restart_adopts_it(
    sqlite_local_servers: LocalServers,
) -> None:
    servers = sqlite_local_servers
    first = servers.start_cli()
    assert first.process is not None
    assert first.log_path is not None
    with first.client() as http:
        run = started_run(http, options=ENDLESS)
        run_id = run["id"]
        series = wait_for(
            lambda: (s := run_metric_names(http, run_id)) and "val_accuracy" in s and s,
            what="the first epoch's metrics",
        )
        last_seen = series["val_accuracy"][-1]["date"]
    pids = worker_pids(servers.data_dir, run["job_id"])

    first.process.send_signal(signal.SIGTERM)
    # Shut down (uvicorn then re-raises the signal it caught: status -15, as for any process
    # ended by SIGTERM), having logged what it left running.
    assert first.process.wait(timeout=30) in (0, -signal.SIGTERM)
    log = first.log_path.read_text()
    assert f"run {run_id} (STARTED) keeps running; a restart adopts it" in log, log
    # Nothing ended the run: its workers train on, and the database still says STARTED.
    assert stored_state(servers.database_url, run_id) == "STARTED"
    time.sleep(1)
    assert all(is_running(pid) for pid in pids.values())

    second = servers.start_cli(port=first.settings.port)
    with second.client() as http:
        adopted = get_run(http, run_id)
        assert adopted["state"] == "STARTED", adopted
        pods = http.get("/api/pods/").json()
        assert {pod["phase"] for pod in pods} == {"Running"}, pods
        wait_for(
            lambda: run_metric_names(http, run_id, since=last_seen).get("val_accuracy"),
            what="metrics posted to the restarted server by the adopted workers",
        )
        assert http.delete(f"/api/runs/{run_id}/").json()["state"] == "ABORTED"
    assert_cleaned_up(servers.data_dir, run["job_id"])
