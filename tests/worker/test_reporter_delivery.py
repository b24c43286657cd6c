"""The reporter across a server's absence, against a small fake of the server's metric endpoints
(real HTTP, on a port that has no listener until the test starts one): points reported while
the server is away are kept (in memory, then in a spool file, then dropped and counted) and
delivered, each exactly once, when it is back; a batch stored whose answer was lost is not
stored again; one bad point does not take its batch with it."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from distbench.worker.backlog import Backlog
from distbench.worker.reporter import BatchReporter
from tests.conftest import free_port


@dataclass
class MetricStore:
    """What the fake server stored, and how it misbehaves."""

    points: list[dict[str, Any]] = field(default_factory=list)
    posts: int = 0
    reads: int = 0
    # Store the next this many batches, then drop the connection without an answer.
    lose_answers: int = 0
    # Drop the next this many batches unstored and unanswered (lost on the way).
    drop_unstored: int = 0
    # A point with this name makes its whole batch a 422, as a real validation error does.
    bad_name: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> list[tuple[str, str, str]]:
        return [(p["name"], p["date"], p["metadata"]) for p in self.points]


class FakeServer:
    """``POST /api/metrics/batch`` and ``GET /api/metrics/RUN/?metric_type=run&since=...``."""

    def __init__(self, store: MetricStore, port: int) -> None:
        self.store = store
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        store = self.store

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with store.lock:
                    store.posts += 1
                    if store.drop_unstored:
                        store.drop_unstored -= 1
                        self.close_connection = True
                        return
                    if store.bad_name in {point["name"] for point in batch}:
                        self._answer(422, {"error": {"code": "invalid_input", "message": "bad"}})
                        return
                    store.points.extend(batch)
                    if store.lose_answers:
                        store.lose_answers -= 1
                        self.close_connection = True
                        return  # stored, but no answer: the connection just closes
                self._answer(201, {"stored": len(batch)})

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                since = _date(query["since"][0])
                wanted = query.get("metric_filter", [None])[0]
                series: dict[str, list[dict[str, Any]]] = {}
                with store.lock:
                    store.reads += 1
                    for point in store.points:
                        if _date(point["date"]) > since and wanted in (None, point["name"]):
                            series.setdefault(point["name"], []).append(point)
                self._answer(200, series)

            def _answer(self, status: int, body: object) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return None

        return Handler


def _date(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@dataclass
class Place:
    """A port where the server will be, and the server once started there."""

    port: int
    store: MetricStore = field(default_factory=MetricStore)
    server: FakeServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.server = FakeServer(self.store, self.port)


@pytest.fixture
def place() -> Iterator[Place]:
    where = Place(port=free_port())
    try:
        yield where
    finally:
        if where.server is not None:
            where.server.close()


def reporter_for(place: Place, **options: Any) -> BatchReporter:
    options.setdefault("flush_interval_s", 0.05)
    options.setdefault("backoff_s", 0.05)
    options.setdefault("max_backoff_s", 0.2)
    return BatchReporter(run_id=1, http=httpx.Client(base_url=place.url, timeout=10), **options)


def test_points_reported_while_the_server_is_away_arrive_once_when_it_is_back(
    place: Place, caplog: pytest.LogCaptureFixture
) -> None:
    reporter = reporter_for(place)
    for step in range(3000):
        reporter.report("loss", step / 10, metadata=json.dumps({"step": step}))
    closing = threading.Thread(target=reporter.close)
    with caplog.at_level(logging.INFO, logger="distbench.worker.reporter"):
        closing.start()  # the run has ended; the server is still away ...
        # ... for 2 s, some ten tries at this backoff: the reporter used to give up after six.
        closing.join(timeout=2)
        assert closing.is_alive(), "close() gave up while it still had time to wait"
        place.start()
        closing.join(timeout=30)
    assert not closing.is_alive()

    counts = (reporter.reported, reporter.sent, reporter.failed, reporter.dropped)
    assert counts == (3000, 3000, 0, 0)
    steps = [json.loads(point["metadata"])["step"] for point in place.store.points]
    assert steps == list(range(3000))  # each once, in order
    assert "metric server answering again" in caplog.text
    assert "metrics: 3000 reported, 3000 delivered" in caplog.text


def test_beyond_memory_points_wait_in_a_spool_file_and_beyond_that_are_dropped(
    place: Place, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "rank-0.metrics.jsonl"
    backlog = Backlog(spool_path=spool, memory_points=100, spool_points=1000)
    reporter = reporter_for(place, backlog=backlog, max_batch=64)
    with caplog.at_level(logging.WARNING, logger="distbench.worker.reporter"):
        for step in range(600):
            reporter.report("loss", step, metadata=str(step))
        assert (len(backlog), backlog.spooled) == (600, 500)
        assert spool.exists()
        for step in range(600, 1200):
            reporter.report("loss", step, metadata=str(step))
    assert (len(backlog), backlog.spooled) == (1100, 1000)
    assert reporter.dropped == 100
    assert "metric backlog full (1100 points waiting for the server): 1 points dropped" in (
        caplog.text
    )

    place.start()
    reporter.close(timeout_s=30)
    assert (reporter.sent, reporter.failed, reporter.dropped) == (1100, 0, 100)
    # The oldest are kept, in order; the newest past the bound are the ones dropped.
    assert [point["metadata"] for point in place.store.points] == [str(i) for i in range(1100)]
    assert backlog.ever_spooled == 1000
    assert not spool.exists()  # emptied, then removed


def test_a_batch_stored_whose_answer_was_lost_is_not_stored_again(place: Place) -> None:
    place.store.lose_answers = 1
    place.start()
    reporter = reporter_for(place)
    for step in range(50):
        reporter.report("loss", step, metadata=str(step))
    reporter.report("accuracy", 0.5)
    reporter.close(timeout_s=30)

    assert place.store.posts == 1  # the one post was stored; the reporter checked and knew
    assert place.store.reads == 1
    assert sorted(place.store.keys()) == sorted(set(place.store.keys()))
    assert len(place.store.points) == 51
    assert (reporter.sent, reporter.failed) == (51, 0)


def test_a_batch_lost_before_it_was_stored_is_sent_again(place: Place) -> None:
    place.store.drop_unstored = 1
    place.start()
    reporter = reporter_for(place)
    for step in range(50):
        reporter.report("loss", step, metadata=str(step))
    reporter.close(timeout_s=30)

    assert place.store.posts == 2  # dropped unanswered and unstored; checked; sent again
    assert place.store.reads == 1
    assert [point["metadata"] for point in place.store.points] == [str(i) for i in range(50)]
    assert (reporter.sent, reporter.failed) == (50, 0)


def test_one_bad_point_is_refused_alone(place: Place, caplog: pytest.LogCaptureFixture) -> None:
    place.store.bad_name = "bad"
    place.start()
    reporter = reporter_for(place, flush_interval_s=0.5)
    for step in range(40):
        reporter.report("bad" if step == 17 else "loss", step, metadata=str(step))
    with caplog.at_level(logging.ERROR, logger="distbench.worker.reporter"):
        reporter.close(timeout_s=30)

    stored = [point["metadata"] for point in place.store.points]
    assert stored == [str(step) for step in range(40) if step != 17]
    assert (reporter.sent, reporter.refused, reporter.failed) == (39, 1, 0)
    assert "the server refused 1 metric points: HTTP 422" in caplog.text
