"""Group commit for metric points: many concurrent requests, few transactions.

Each POST of one point used to pay for its own transaction (and two existence queries); with
dozens of workers posting at once, that was most of the server's time. Requests hand their
points to one writer thread and await; the thread stores everything that has queued up since
its last commit in one transaction, then wakes all the waiting requests with one call into
their event loop. Each request is still all-or-nothing: its owners are checked before anything
is written, and if the shared transaction fails, the requests are retried one by one so one bad
request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from distbench.errors import DistbenchError
from distbench.store import metrics as metric_store
from distbench.store.records import MetricPoint

log = logging.getLogger(__name__)


@dataclass
class _Request:
    points: Sequence[MetricPoint]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[int]
    outcome: int | BaseException | None = None


def _settle(requests: list[_Request]) -> None:
    """In the event loop: hand each waiting request its outcome."""
    for request in requests:
        if request.done.cancelled():
            continue
        if isinstance(request.outcome, BaseException):
            request.done.set_exception(request.outcome)
        else:
            request.done.set_result(request.outcome or 0)


class PointWriter:
    def __init__(self, engine: sa.Engine, *, max_points_per_commit: int = 50_000) -> None:
        self.engine = engine
        self.max_points_per_commit = max_points_per_commit
        # SimpleQueue: a C queue without the Condition that queue.Queue notifies on every put.
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._known_runs: set[int] = set()
        self._known_pods: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="point-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def submit(self, points: Sequence[MetricPoint]) -> asyncio.Future[int]:
        """Queue ``points`` to be stored together (call from the event loop). The future gives
        their number, or raises ``NotFound`` (unknown run or pod) or the database's error."""
        loop = asyncio.get_running_loop()
        request = _Request(points, loop, loop.create_future())
        self._queue.put(request)
        return request.done

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.points)
            stop = False
            while size < self.max_points_per_commit:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
                size += len(item.points)
            self._write(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
            for request in batch:
                by_loop.setdefault(request.loop, []).append(request)
            for loop, requests in by_loop.items():
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_settle, requests)
            if stop:
                return

    def _write(self, batch: list[_Request]) -> None:
        """Store the batch, setting each request's ``outcome``."""
        accepted: list[_Request] = []
        try:
            with self.engine.begin() as conn:
                for request in batch:
                    try:
                        metric_store.check_owners(
                            conn=conn,
                            points=request.points,
                            known_runs=self._known_runs,
                            known_pods=self._known_pods,
                        )
                    except DistbenchError as exc:
                        request.outcome = exc
                    else:
                        accepted.append(request)
                rows = [point for request in accepted for point in request.points]
                if rows:
                    metric_store.insert_rows(conn=conn, points=rows)
        except Exception as exc:
            pending = [request for request in batch if request.outcome is None]
            if len(pending) > 1:
                # Do not let one request's failure fail the others: store each on its own.
                for request in pending:
                    self._write([request])
                return
            for request in pending:
                log.exception("storing %d metric points failed", len(request.points))
                request.outcome = exc
            return
        for request in accepted:
            request.outcome = len(request.points)
