"""Run metrics from a worker to the server: queued without blocking training, posted in batches
by a background thread, retried, and counted and logged when they finally cannot be delivered
(MLBench dropped failed posts silently; we never do)."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from distbench.timefmt import format_us, now_us

log = logging.getLogger(__name__)


class Reporter(Protocol):
    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None: ...

    def close(self, timeout_s: float = 30.0) -> None: ...


class NullReporter:
    """What a worker uses when no server is configured (e.g. under plain torchrun)."""

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        return None

    def close(self, timeout_s: float = 30.0) -> None:
        return None


class BatchReporter:
    def __init__(
        self,
        *,
        run_id: int,
        http: httpx.Client,
        flush_interval_s: float = 1.0,
        max_batch: int = 2000,
        max_queue: int = 200_000,
        attempts: int = 6,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.run_id = run_id
        self.http = http
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.attempts = attempts
        self.backoff_s = backoff_s
        self._sleep = sleep
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=max_queue)
        self._closing = threading.Event()
        self._posted_once = False
        # Points of the batch being posted now: still undelivered if ``close`` gives up on it.
        self._in_flight = 0
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="metric-reporter", daemon=True)
        self._thread.start()

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        """Queue one point; never blocks. A full queue drops the point, counted and logged."""
        point = {
            "run_id": self.run_id,
            "name": name,
            "date": format_us(now_us()),
            "value": "nan" if math.isnan(value) else float(value),
            "cumulative": cumulative,
            "metadata": metadata,
        }
        if math.isinf(value):
            point["value"] = "inf" if value > 0 else "-inf"
        try:
            self._queue.put_nowait(point)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("metric queue full: %d points dropped so far", self.dropped)

    def close(self, timeout_s: float = 30.0) -> None:
        """Send what is queued (waiting at most ``timeout_s``) and stop."""
        self._closing.set()
        self._thread.join(timeout=timeout_s)
        left = self._queue.qsize()
        if self._thread.is_alive():
            # Gave up waiting on a post: its points are not delivered as far as we can tell.
            left += self._in_flight
        if left:
            self.failed += left
        if self.failed or self.dropped:
            log.error(
                "metrics not delivered: %d failed after %d attempts, %d dropped (queue full); "
                "%d delivered",
                self.failed,
                self.attempts,
                self.dropped,
                self.sent,
            )
        if not self._thread.is_alive():
            # (Closing the client under a post still in progress would crash the sender.)
            self.http.close()

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch:
                self._in_flight = len(batch)
                self._post(batch)
                self._in_flight = 0
            elif self._closing.is_set():
                return

    def _take(self) -> list[dict[str, Any]]:
        """Wait for a point, then gather more until the flush interval has passed (counted from
        that point) or the batch is full. The first batch goes out at once: it is what tells
        someone watching that the run is training."""
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + (self.flush_interval_s if self._posted_once else 0.0)
        while len(batch) < self.max_batch:
            remaining_s = deadline - time.monotonic()
            try:
                if remaining_s > 0 and not self._closing.is_set():
                    batch.append(self._queue.get(timeout=remaining_s))
                else:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._posted_once = True
        return batch

    def _post(self, batch: list[dict[str, Any]]) -> None:
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.http.post("/api/metrics/batch", json=batch)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 300:
                    self.sent += len(batch)
                    return
                problem = f"HTTP {response.status_code}: {response.text[:300]}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # the server refused these points; resending will not help
            if attempt < self.attempts and not self._closing.is_set():
                log.warning("metric post failed (attempt %d): %s; retrying", attempt, problem)
                self._sleep(delay)
                delay = min(delay * 2, 10.0)
            elif attempt < self.attempts:
                self._sleep(min(delay, 1.0))
        self.failed += len(batch)
        log.error("gave up on %d metric points: %s", len(batch), problem)


def http_client(*, server_url: str, server_socket: str | None, token: str | None) -> httpx.Client:
    """An HTTP client to the server: over the relay's Unix socket when one is given (workers in
    network namespaces), else over TCP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(uds=server_socket, retries=2) if server_socket else None
    return httpx.Client(base_url=server_url, headers=headers, timeout=30, transport=transport)
