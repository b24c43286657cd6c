"""Queued runs with real workers: three posted at once train one after another, each to the
end, and a queue survives a real server restart (the new server adopts the active run and then
starts the queued ones in order). The API rules are tested on the fake backend in
tests/api/test_run_queue.py."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from tests.api.helpers import start_run as post_run
from tests.backends.local_helpers import (
    ENDLESS,
    QUICK,
    LocalServers,
    assert_cleaned_up,
    get_run,
    started_run,
    wait_for_state,
)


def queued_run(http: httpx.Client, name: str) -> dict[str, Any]:
    return post_run(http, name=name, num_workers=2, options=QUICK, queue=True)


def assert_one_after_another(runs: list[dict[str, Any]]) -> None:
    """Each run's turn came (its workers were launched) after the run before it had ended.
    Not ``started_at``: a short run may end between two polls of the server and skip STARTED."""
    for before, after in itertools.pairwise(runs):
        assert after["job_metadata"]["dequeued_at"] >= before["finished_at"], (before, after)
        assert after["finished_at"] >= after["job_metadata"]["dequeued_at"], after


def test_three_queued_runs_train_one_after_another(sqlite_local_servers: LocalServers) -> None:
    server = sqlite_local_servers.start()
    with server.client() as http:
        posted = [queued_run(http, f"queued {index}") for index in range(3)]
        assert [run["state"] for run in posted] == ["INITIALIZED", "QUEUED", "QUEUED"]

        for run in posted:
            wait_for_state(http, run["id"], "FINISHED", timeout_s=120)
        ended = [get_run(http, run["id"]) for run in posted]

    assert [run["state"] for run in ended] == ["FINISHED"] * 3, ended
    assert_one_after_another(ended)
    for run in ended:
        assert run["job_metadata"]["result"]["target_reached"] is True, run
        assert_cleaned_up(sqlite_local_servers.data_dir, run["job_id"])


def test_queued_runs_survive_a_server_restart(local_servers: LocalServers) -> None:
    first = local_servers.start()
    with first.client() as http:
        active = started_run(http, name="active", options=ENDLESS)
        queued = [queued_run(http, f"queued {index}") for index in range(2)]
        assert [run["state"] for run in queued] == ["QUEUED", "QUEUED"]

    first.stop()

    second = local_servers.start(port=first.settings.port)
    with second.client() as http:
        # The active run is adopted; the queue is intact and still waits behind it.
        assert get_run(http, active["id"])["state"] == "STARTED"
        assert [get_run(http, run["id"])["state"] for run in queued] == ["QUEUED", "QUEUED"]

        aborted = http.delete(f"/api/runs/{active['id']}/").json()
        assert aborted["state"] == "ABORTED"
        for run in queued:
            wait_for_state(http, run["id"], "FINISHED", timeout_s=120)
        ended = [get_run(http, run["id"]) for run in queued]

    assert [run["state"] for run in ended] == ["FINISHED"] * 2, ended
    assert_one_after_another([aborted, *ended])
    for run in [active, *ended]:
        assert_cleaned_up(local_servers.data_dir, run["job_id"])
