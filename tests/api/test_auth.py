"""With a server token, writes (POST, DELETE) need ``Authorization: Bearer <token>``: 401 when it
is missing, 403 when it is wrong. Reads stay open. A run-scoped token may post that run's metrics
and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from distbench.orchestrator.tokens import run_token
from tests.api.helpers import (
    client,
    error_code,
    run_series,
    start_run,
    wait_for_pods,
    wait_for_state,
)
from tests.conftest import RunningServer, StartServer

TOKEN = "s3cret-server-token"
RUN_BODY = {"name": "guarded", "num_workers": 1}


@pytest.fixture
def guarded(start_server: StartServer) -> RunningServer:
    return start_server(token=TOKEN)


@pytest.fixture
def admin(guarded: RunningServer) -> Iterator[httpx.Client]:
    with client(guarded, TOKEN) as http:
        yield http


@pytest.fixture
def anonymous(guarded: RunningServer) -> Iterator[httpx.Client]:
    with client(guarded) as http:
        yield http


def point(run_id: int, **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "name": "loss", "value": 0.5, **fields}


def test_reads_need_no_token(anonymous: httpx.Client, admin: httpx.Client) -> None:
    run_id = start_run(admin)["id"]

    for path in (
        "/api/runs/",
        f"/api/runs/{run_id}/",
        "/api/pods/",
        "/api/metrics/",
        "/api/health",
    ):
        assert anonymous.get(path).status_code == 200, path
    assert (
        anonymous.get(f"/api/metrics/{run_id}/", params={"metric_type": "run"}).status_code == 200
    )


# Authorization headers that present no token: absent, empty, no token, another scheme, no scheme.
NO_TOKEN = [None, "", "Bearer", f"Basic {TOKEN}", TOKEN]


def test_missing_token_is_401(anonymous: httpx.Client, admin: httpx.Client) -> None:
    run_id = start_run(admin)["id"]

    for header in NO_TOKEN:
        headers = {} if header is None else {"Authorization": header}
        responses = [
            anonymous.post("/api/runs/", json=RUN_BODY, headers=headers),
            anonymous.post("/api/metrics", json=point(run_id), headers=headers),
            anonymous.post("/api/metrics/batch", json=[point(run_id)], headers=headers),
            anonymous.delete(f"/api/runs/{run_id}/", headers=headers),
        ]

        assert [r.status_code for r in responses] == [401] * 4, header
        assert {error_code(r) for r in responses} == {"unauthenticated"}
        assert "Authorization: Bearer" in responses[0].json()["error"]["message"]
        assert TOKEN not in responses[0].text
    assert admin.get(f"/api/runs/{run_id}/").json()["state"] != "ABORTED"
    assert run_series(admin, run_id) == {}


def test_wrong_token_is_403(guarded: RunningServer, admin: httpx.Client) -> None:
    run_id = start_run(admin)["id"]

    with client(guarded, "not-the-token") as wrong:
        responses = [
            wrong.post("/api/runs/", json=RUN_BODY),
            wrong.post("/api/metrics", json=point(run_id)),
            wrong.post("/api/metrics/batch", json=[point(run_id)]),
            wrong.delete(f"/api/runs/{run_id}/"),
        ]

    assert [r.status_code for r in responses] == [403] * 4
    assert {error_code(r) for r in responses} == {"forbidden"}
    assert admin.get(f"/api/runs/{run_id}/").json()["state"] != "ABORTED"
    assert run_series(admin, run_id) == {}


def test_right_token_writes(admin: httpx.Client) -> None:
    started = admin.post("/api/runs/", json=RUN_BODY)
    assert started.status_code == 200
    run_id = started.json()["id"]

    assert admin.post("/api/metrics", json=point(run_id)).status_code == 201
    assert admin.post("/api/metrics/batch", json=[point(run_id)]).status_code == 201
    assert admin.delete(f"/api/runs/{run_id}/").json()["state"] == "ABORTED"
    # The scheme is case-insensitive, as RFC 7235 says.
    lower = admin.post(
        "/api/metrics", json=point(run_id), headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert lower.status_code == 201


def test_run_token_posts_metrics_of_its_run_only(
    guarded: RunningServer, admin: httpx.Client
) -> None:
    first = start_run(admin)["id"]
    pod = wait_for_pods(admin, first)[0]
    guarded.fake.finish(first)
    wait_for_state(admin, first, "FINISHED")
    second = start_run(admin)["id"]

    with client(guarded, run_token(TOKEN, first)) as worker:
        own = worker.post("/api/metrics", json=point(first))
        own_batch = worker.post("/api/metrics/batch", json=[point(first), point(first)])
        other = worker.post("/api/metrics", json=point(second))
        mixed = worker.post("/api/metrics/batch", json=[point(first), point(second)])
        of_a_pod = worker.post("/api/metrics", json={"pod_name": pod, "name": "x", "value": 1})

    assert (own.status_code, own_batch.status_code) == (201, 201)
    assert [other.status_code, mixed.status_code, of_a_pod.status_code] == [403, 403, 403]
    assert len(run_series(admin, first)["loss"]) == 3
    assert run_series(admin, second) == {}


def test_run_token_cannot_start_or_abort_runs(guarded: RunningServer, admin: httpx.Client) -> None:
    run_id = start_run(admin)["id"]

    with client(guarded, run_token(TOKEN, run_id)) as worker:
        start = worker.post("/api/runs/", json=RUN_BODY)
        abort = worker.delete(f"/api/runs/{run_id}/")

    assert (start.status_code, abort.status_code) == (403, 403)
    assert [run["id"] for run in admin.get("/api/runs/").json()] == [run_id]
    assert admin.get(f"/api/runs/{run_id}/").json()["state"] != "ABORTED"


def test_run_token_of_another_server_is_403(guarded: RunningServer, admin: httpx.Client) -> None:
    run_id = start_run(admin)["id"]

    with client(guarded, run_token("another-server", run_id)) as stranger:
        response = stranger.post("/api/metrics", json=point(run_id))

    assert response.status_code == 403
    assert run_series(admin, run_id) == {}


def test_without_a_server_token_writes_are_open(server: RunningServer) -> None:
    with client(server, "anything") as http:
        assert http.post("/api/runs/", json=RUN_BODY).status_code == 200
