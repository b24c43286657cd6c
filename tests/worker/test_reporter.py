"""The worker's metric reporter: batches reach a real server; a failing server gets retries for
as long as the worker lives, and what is finally not delivered is counted and logged, never
dropped silently; ``report`` never blocks. (Delivery across a server's absence: see
test_reporter_delivery.py.)"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from distbench.worker.backlog import Backlog
from distbench.worker.env import read_env
from distbench.worker.reporter import BatchReporter, NullReporter, http_client, make_reporter
from tests.backends.local_helpers import wait_for
from tests.conftest import RunningServer, StartServer, free_port


class CountingTransport(httpx.HTTPTransport):
    """Real HTTP, with a record of every request body sent."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[list[dict[str, object]]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(json.loads(request.read()))
        return super().handle_request(request)


def counting_client(url: str) -> tuple[httpx.Client, CountingTransport]:
    transport = CountingTransport()
    return httpx.Client(base_url=url, timeout=30, transport=transport), transport


@pytest.fixture
def run_id(start_server: StartServer) -> Iterator[tuple[RunningServer, int]]:
    server = start_server()
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/api/runs/", json={"name": "reported", "num_workers": 1})
        assert response.status_code == 200, response.text
        yield server, response.json()["id"]


def test_points_arrive_in_batches(run_id: tuple[RunningServer, int]) -> None:
    server, rid = run_id
    http, transport = counting_client(server.url)
    reporter = BatchReporter(run_id=rid, http=http, flush_interval_s=0.5)
    for step in range(200):
        reporter.report("loss", 1.0 / (step + 1), metadata=f'{{"step": {step}}}')
    reporter.report("val_loss", float("nan"))
    reporter.report("ratio", float("inf"))
    reporter.report("samples", 1000, cumulative=True)
    reporter.close()

    assert (reporter.sent, reporter.failed, reporter.dropped) == (203, 0, 0)
    # Far fewer requests than points: they went in batches.
    assert 1 <= len(transport.bodies) <= 5
    assert sum(len(body) for body in transport.bodies) == 203
    with httpx.Client(base_url=server.url) as client:
        series = client.get(f"/api/metrics/{rid}/", params={"metric_type": "run"}).json()
    assert len(series["loss"]) == 200
    assert float(series["loss"][0]["value"]) == 1.0
    assert series["loss"][9]["metadata"] == '{"step": 9}'
    assert series["val_loss"][0]["value"].lower() == "nan"
    assert series["ratio"][0]["value"].lower() in {"inf", "infinity"}
    assert series["samples"][0]["cumulative"] is True


@dataclass
class ScriptedServer:
    """A real HTTP server answering POSTs with ``status``; ``hold`` keeps requests waiting."""

    status: int = 503
    hold: threading.Event | None = None
    received: list[bytes] = field(default_factory=list)
    got_request: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                scripted.received.append(body)
                scripted.got_request.set()
                if scripted.hold is not None:
                    scripted.hold.wait(timeout=30)
                payload = b'{"error": {"code": "scripted", "message": "", "details": {}}}'
                self.send_response(scripted.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    script = ScriptedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), script.handler())
    httpd.daemon_threads = True
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield script
    finally:
        if script.hold is not None:
            script.hold.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_a_failing_server_is_retried_until_close_gives_up(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps: list[float] = []
    reporter = BatchReporter(
        run_id=1,
        http=httpx.Client(base_url=scripted.url, timeout=10),
        backoff_s=0.5,
        max_backoff_s=4.0,
        sleep=sleeps.append,
    )
    for step in range(10):
        reporter.report("loss", float(step))
    # No fixed number of tries: the sender keeps at it for as long as the worker runs.
    wait_for(
        lambda: sum(len(json.loads(body)) for body in scripted.received) >= 10 * 8,
        what="every point to be tried eight times",
    )
    with caplog.at_level(logging.WARNING, logger="distbench.worker.reporter"):
        reporter.close(timeout_s=0.2)

    assert (reporter.reported, reporter.sent, reporter.failed, reporter.dropped) == (10, 0, 10, 0)
    batches = [json.loads(body) for body in scripted.received]
    assert all(batch == batches[0] for batch in batches)
    # Backing off between tries, up to a cap.
    assert sleeps[:6] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert "metrics not all delivered: 10 reported, 0 delivered, 10 not delivered" in caplog.text


def test_unreachable_server_counts_points_failed() -> None:
    reporter = BatchReporter(
        run_id=1,
        http=httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=5),
        sleep=lambda _s: None,
    )
    for step in range(5):
        reporter.report("loss", float(step))
    reporter.close(timeout_s=0.5)
    assert (reporter.sent, reporter.failed) == (0, 5)


def test_points_the_server_refuses_are_not_resent(run_id: tuple[RunningServer, int]) -> None:
    server, rid = run_id
    http, transport = counting_client(server.url)
    # A run that does not exist: 404, which no retry can fix.
    reporter = BatchReporter(run_id=rid + 1000, http=http, sleep=lambda _s: None)
    reporter.report("loss", 1.0)
    reporter.close()
    assert (reporter.sent, reporter.refused, reporter.failed) == (0, 1, 0)
    assert len(transport.bodies) == 1


def test_report_never_blocks_and_a_full_backlog_is_counted(scripted: ScriptedServer) -> None:
    scripted.status = 201
    scripted.hold = threading.Event()
    reporter = BatchReporter(
        run_id=1,
        http=httpx.Client(base_url=scripted.url, timeout=30),
        backlog=Backlog(spool_path=None, memory_points=10, spool_points=0),
        flush_interval_s=0.05,
    )
    reporter.report("loss", 0.0)
    assert scripted.got_request.wait(timeout=10)  # the sender is now stuck in its post

    done = threading.Event()

    def report_many() -> None:
        for step in range(25):
            reporter.report("loss", float(step + 1))
        done.set()

    threading.Thread(target=report_many, daemon=True).start()
    assert done.wait(timeout=10), "report() blocked while the server was not answering"
    # The point in the post stays in the backlog until the server has it: 9 more fit.
    assert reporter.dropped == 16

    scripted.hold.set()
    reporter.close()
    assert (reporter.reported, reporter.sent, reporter.failed, reporter.dropped) == (26, 10, 0, 16)


def test_points_in_flight_at_close_are_counted_failed(
    scripted: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.status = 201
    scripted.hold = threading.Event()
    reporter = BatchReporter(run_id=1, http=httpx.Client(base_url=scripted.url, timeout=30))
    for step in range(5):
        reporter.report("loss", float(step))
    assert scripted.got_request.wait(timeout=10)
    wait_for(
        lambda: sum(len(json.loads(body)) for body in scripted.received) == 5,
        what="all five points to be in a post",
    )
    with caplog.at_level(logging.ERROR, logger="distbench.worker.reporter"):
        reporter.close(timeout_s=0.2)  # the worker is exiting; the server still has not answered
    assert reporter.sent + reporter.failed == 5, (reporter.sent, reporter.failed)
    assert reporter.failed == 5
    assert "5 not delivered" in caplog.text
    scripted.hold.set()


def test_no_server_configured_gives_the_null_reporter() -> None:
    env = read_env({"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "x", "MASTER_PORT": "1"})
    reporter = make_reporter(env)
    assert isinstance(reporter, NullReporter)
    reporter.report("loss", 1.0)
    reporter.close()


def test_worker_reporter_talks_to_the_server_it_is_given(
    run_id: tuple[RunningServer, int],
) -> None:
    server, rid = run_id
    env = read_env(
        {
            "RANK": "0",
            "WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "1",
            "DISTBENCH_RUN_ID": str(rid),
            "DISTBENCH_SERVER_URL": server.url,
        }
    )
    reporter = make_reporter(env)
    assert isinstance(reporter, BatchReporter)
    reporter.report("epoch", 1)
    reporter.close()
    assert reporter.sent == 1
    with http_client(server_url=server.url, server_socket=None, token=None) as http:
        series = http.get(f"/api/metrics/{rid}/", params={"metric_type": "run"}).json()
    assert [float(point["value"]) for point in series["epoch"]] == [1.0]


def test_the_check_for_a_lost_answer_reads_the_real_server_right(
    run_id: tuple[RunningServer, int],
) -> None:
    # What the reporter asks a server after a post whose answer was lost: which of the batch's
    # points it has. (The fake server of test_reporter_delivery.py answers the same way.)
    server, rid = run_id
    sent = encoded_points(rid, [("loss", 0.25, "0"), ("loss", 0.5, "1"), ("nan", math.nan, "")])
    unsent = encoded_points(rid, [("loss", 9.0, "9")])
    with httpx.Client(base_url=server.url, timeout=30) as http:
        body = b"[" + b",".join(sent) + b"]"
        stored = http.post("/api/metrics/batch", content=body, headers=JSON)
        assert stored.status_code == 201, stored.text

    checker = BatchReporter(run_id=rid, http=httpx.Client(base_url=server.url, timeout=30))
    try:
        assert checker._not_stored(sent) == []
        assert checker._not_stored(sent[:1]) == []  # (one name: read with metric_filter)
        assert checker._not_stored(unsent) == unsent
        assert checker._not_stored(sent + unsent) == unsent
    finally:
        checker.close()


JSON = {"Content-Type": "application/json"}


def encoded_points(run: int, points: list[tuple[str, float, str]]) -> list[bytes]:
    """The points as a reporter posts them, kept by one whose server is not there."""
    unreachable = httpx.Client(base_url=f"http://127.0.0.1:{free_port()}", timeout=5)
    reporter = BatchReporter(run_id=run, http=unreachable)
    for name, value, metadata in points:
        reporter.report(name, value, metadata=metadata)
    with reporter._lock:
        encoded = reporter._backlog.oldest(len(points))
    reporter.close(timeout_s=0)
    return encoded
