"""With a server token, writes (POST, DELETE) need ``Authorization: Bearer <token>``: 401 when it
is missing, 403 when it is wrong. Reads stay open unless the server protects them. A run-scoped
token may post that run's metrics and nothing else, until a grace time after its run ended."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from distbench.api.run_tokens import RunTokenGrace
from distbench.orchestrator.tokens import run_id_of_token, run_token
from distbench.settings import Settings
from tests.api.helpers import (
    assert_error,
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


# -- malformed run tokens: 403, never a 500 before authentication -----------------------------
# "²" and "٣" are digits to str.isdigit and not to int; 5,000 digits are more than int parses.
MALFORMED = [
    b"run-\xb2-abc",  # latin-1, as a header carries it
    "run-\u0663-abc".encode(),
    b"run-" + b"9" * 5000 + b"-abc",
    b"run-" + b"9" * 5000 + b"-" + b"0" * 64,
    b"run-" + b"1" * 30 + b"-" + b"0" * 64,
    b"run--1-" + b"0" * 64,
]


@pytest.mark.parametrize("presented", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_run_token_is_403(guarded: RunningServer, presented: bytes) -> None:
    with httpx.Client(base_url=guarded.url, timeout=30) as http:
        response = http.post(
            "/api/metrics",
            json=point(1),
            headers={b"Authorization": b"Bearer " + presented},
        )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_run_id_of_token_refuses_what_int_would_not_parse() -> None:
    for presented in ("run-\u00b2-abc", "run-\u0663-" + "0" * 64, "run-" + "9" * 5000 + "-x"):
        assert run_id_of_token(TOKEN, presented) is None
    assert run_id_of_token(TOKEN, run_token(TOKEN, 12)) == 12
    assert run_id_of_token(TOKEN, run_token(TOKEN, 12).upper().replace("RUN", "run")) is None


# -- a run token stops posting a grace time after its run ended ----------------------------------
def grace_of(server: RunningServer) -> RunTokenGrace:
    grace: RunTokenGrace = server.app.state.run_token_grace  # type: ignore[attr-defined]
    return grace


def end_run(server: RunningServer, admin: httpx.Client, run_id: int, state: str) -> None:
    if state == "ABORTED":
        assert admin.delete(f"/api/runs/{run_id}/").status_code == 200
        return
    wait_for_pods(admin, run_id)
    if state == "FINISHED":
        server.fake.finish(run_id)
    else:
        server.fake.fail(run_id, "a worker crashed")
    wait_for_state(admin, run_id, state)


@pytest.mark.parametrize("state", ["FINISHED", "FAILED", "ABORTED"])
def test_run_token_posts_late_points_until_the_grace_time_is_over(
    guarded: RunningServer, admin: httpx.Client, state: str
) -> None:
    grace = grace_of(guarded)
    assert grace.grace_s == 300  # the default
    run_id = start_run(admin)["id"]
    end_run(guarded, admin, run_id, state)
    ended_at = admin.get(f"/api/runs/{run_id}/").json()["finished_at"]

    with client(guarded, run_token(TOKEN, run_id)) as worker:
        late = worker.post("/api/metrics", json=point(run_id))
        assert late.status_code == 201, late.text
        # The server's clock, moved past the end and the grace time.
        now = grace.clock()
        grace.clock = lambda: now + 301
        too_late = worker.post("/api/metrics/batch", json=[point(run_id)])

    assert too_late.status_code == 403
    body = too_late.json()["error"]
    assert body["code"] == "forbidden"
    assert f"run {run_id} ended ({state})" in body["message"]
    assert body["details"] == {"run_id": run_id, "state": state, "grace_s": 300}
    assert ended_at is not None
    assert len(run_series(admin, run_id)["loss"]) == 1
    # The server token itself is not bound to any run.
    assert admin.post("/api/metrics", json=point(run_id)).status_code == 201


def test_run_token_of_an_active_run_never_expires(
    guarded: RunningServer, admin: httpx.Client
) -> None:
    grace = grace_of(guarded)
    run_id = start_run(admin)["id"]
    grace.clock = lambda: 4_000_000_000.0  # long after anything the run could have done

    with client(guarded, run_token(TOKEN, run_id)) as worker:
        assert worker.post("/api/metrics", json=point(run_id)).status_code == 201


def test_grace_time_is_a_setting(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, run_token_grace_s=0)
    with client(server, TOKEN) as admin:
        run_id = start_run(admin)["id"]
        end_run(server, admin, run_id, "ABORTED")
    with client(server, run_token(TOKEN, run_id)) as worker:
        response = worker.post("/api/metrics", json=point(run_id))

    assert response.status_code == 403
    assert "0 s after the run ended" in response.json()["error"]["message"]


# -- --protect-reads: every read but the health probe needs the server token ---------------------
def read_paths(server: RunningServer, run_id: int) -> list[str]:
    """Every GET of the API document (so a route added later is covered too), with the run's
    id for path parameters."""
    with client(server, TOKEN) as admin:
        document = admin.get("/openapi.json").json()
    return sorted(
        re.sub(r"\{[^}]+\}", str(run_id), path)
        for path, operations in document["paths"].items()
        if "get" in operations
    )


def test_protect_reads_puts_every_read_behind_the_server_token(
    start_server: StartServer,
) -> None:
    server = start_server(token=TOKEN, protect_reads=True)
    with client(server, TOKEN) as admin:
        run_id = start_run(admin)["id"]
    paths = [path for path in read_paths(server, run_id) if path != "/api/health"]
    assert {"/api/runs/", f"/api/runs/{run_id}/logs", "/api/pods/", "/metrics"} <= set(paths)
    exports = [f"/api/metrics/{run_id}/?metric_type=run&format={kind}" for kind in ("csv", "zip")]

    with (
        client(server) as anonymous,
        client(server, "not-the-token") as wrong,
        client(server, run_token(TOKEN, run_id)) as worker,
        client(server, TOKEN) as admin,
    ):
        for path in paths + exports:
            missing, bad, of_a_run = anonymous.get(path), wrong.get(path), worker.get(path)
            assert (missing.status_code, error_code(missing)) == (401, "unauthenticated"), path
            assert "Authorization: Bearer" in missing.json()["error"]["message"]
            assert (bad.status_code, error_code(bad)) == (403, "forbidden"), path
            assert (of_a_run.status_code, error_code(of_a_run)) == (403, "forbidden"), path
            assert admin.get(path).status_code not in (401, 403), path
        assert admin.get(exports[0]).status_code == 200
        assert admin.get("/api/runs/").json()[0]["id"] == run_id
        # The probe stays open; the run token still posts; the dashboard's pages carry no data.
        assert anonymous.get("/api/health").status_code == 200
        assert worker.post("/api/metrics", json=point(run_id)).status_code == 201
        # ... and reads its own run's series back (its reporter checks a lost answer there),
        # no other run's.
        assert worker.get(f"/api/metrics/{run_id}/?metric_type=run").status_code == 200
        other = worker.get(f"/api/metrics/{run_id + 1}/?metric_type=run")
        assert (other.status_code, error_code(other)) == (403, "forbidden")
        assert anonymous.get(f"/runs/{run_id}").status_code == 200


def test_protect_reads_needs_a_token() -> None:
    with pytest.raises(ValueError, match="protect_reads=true needs a token"):
        Settings(protect_reads=True)


# -- HTTP Basic auth: the token as the password, all MLBench's client can send ------------------
def basic(user: str | bytes, password: str | bytes) -> bytes:
    """An ``Authorization`` header of Basic credentials, from exact bytes."""
    raw = (user if isinstance(user, bytes) else user.encode()) + b":"
    raw += password if isinstance(password, bytes) else password.encode()
    return b"Basic " + base64.b64encode(raw)


def basic_client(server: RunningServer, user: str, password: str) -> httpx.Client:
    """A client with credentials in its URL, as MLBench's ``ApiClient(url="user:TOKEN@host")``
    is given them."""
    address = server.url.removeprefix("http://")
    return httpx.Client(base_url=f"http://{user}:{password}@{address}", timeout=30)


def test_basic_auth_with_the_server_token_as_password_writes(guarded: RunningServer) -> None:
    with basic_client(guarded, "mlbench", TOKEN) as http:
        started = http.post("/api/runs/", data={"name": "basic", "num_workers": "1"})
        assert started.status_code == 200, started.text
        run_id = started.json()["id"]
        assert http.post("/api/metrics", data=point(run_id)).status_code == 201
        assert http.post("/api/metrics/batch", json=[point(run_id)]).status_code == 201
        assert http.delete(f"/api/runs/{run_id}").json()["state"] == "ABORTED"
    # Any user name; the scheme in any case (RFC 7235).
    with client(guarded) as http:
        other_user = http.post(
            "/api/metrics",
            json=point(run_id),
            headers={b"Authorization": basic("someone else", TOKEN).replace(b"Basic", b"bASIC")},
        )
        assert other_user.status_code == 201, other_user.text
        assert len(run_series(http, run_id)["loss"]) == 3


def test_basic_auth_with_a_wrong_password_is_403(
    guarded: RunningServer, admin: httpx.Client
) -> None:
    run_id = start_run(admin)["id"]

    with basic_client(guarded, "mlbench", "not-the-token") as wrong:
        responses = [
            wrong.post("/api/runs/", json=RUN_BODY),
            wrong.post("/api/metrics", json=point(run_id)),
            wrong.delete(f"/api/runs/{run_id}/"),
        ]

    for response in responses:
        assert_error(response, 403, "forbidden", ("token",))
    assert admin.get(f"/api/runs/{run_id}/").json()["state"] != "ABORTED"
    assert run_series(admin, run_id) == {}


def test_run_token_as_basic_password_posts_its_runs_metrics_only(
    guarded: RunningServer, admin: httpx.Client
) -> None:
    run_id = start_run(admin)["id"]

    with basic_client(guarded, "worker", run_token(TOKEN, run_id)) as worker:
        own = worker.post("/api/metrics", json=point(run_id))
        other = worker.post("/api/metrics", json=point(run_id + 1))
        start = worker.post("/api/runs/", json=RUN_BODY)

    assert own.status_code == 201, own.text
    assert (error_code(other), error_code(start)) == ("forbidden", "forbidden")
    assert len(run_series(admin, run_id)["loss"]) == 1


# Basic credentials that cannot be read: not base64, no colon, not UTF-8, no password, empty.
MALFORMED_BASIC = [
    b"Basic !!!not-base64!!!",
    b"Basic " + base64.b64encode(TOKEN.encode()),
    basic(b"\xff\xfe", TOKEN),
    basic("mlbench", b"\xff" + TOKEN.encode()),
    basic("mlbench", ""),
    b"Basic",
    b"Basic \xe9t\xe9",
]


@pytest.mark.parametrize("header", MALFORMED_BASIC, ids=range(len(MALFORMED_BASIC)))
def test_malformed_basic_credentials_are_401(start_server: StartServer, header: bytes) -> None:
    server = start_server(token=TOKEN, protect_reads=True)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        write = http.post("/api/runs/", json=RUN_BODY, headers={b"Authorization": header})
        read = http.get("/api/runs/", headers={b"Authorization": header})

    for response in (write, read):
        assert_error(response, 401, "unauthenticated", ("token",))
        assert TOKEN not in response.text
    with client(server, TOKEN) as admin:
        assert admin.get("/api/runs/").json() == []


def test_401_names_the_bearer_scheme_and_not_basic(guarded: RunningServer) -> None:
    # A Basic challenge would make browsers pop their login dialog over the dashboard's own
    # token prompt; MLBench's client sends Basic credentials without being asked.
    with client(guarded) as anonymous:
        response = anonymous.post("/api/runs/", json=RUN_BODY)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="distbench"'


def test_basic_auth_reads_a_protected_server(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, protect_reads=True)
    with client(server, TOKEN) as admin:
        run_id = start_run(admin)["id"]

    with (
        basic_client(server, "mlbench", TOKEN) as reader,
        basic_client(server, "mlbench", run_token(TOKEN, run_id)) as worker,
        basic_client(server, "mlbench", "not-the-token") as wrong,
    ):
        assert [run["id"] for run in reader.get("/api/runs/").json()] == [run_id]
        assert reader.get("/api/metrics/").status_code == 200
        assert worker.get(f"/api/metrics/{run_id}/?metric_type=run").status_code == 200
        assert_error(worker.get("/api/runs/"), 403, "forbidden")
        assert_error(wrong.get("/api/runs/"), 403, "forbidden")
