"""Run metrics from a worker to the server: kept without blocking training, posted in batches by
a background thread, and kept (in bounded space: see ``backlog``) and retried for as long as the
worker lives while the server cannot take them, so that a server restart loses nothing. Points
are counted and logged when they finally cannot be delivered (MLBench dropped failed posts
silently; we never do).

What each answer means for a batch:

- 2xx: stored.
- Connection refused, no socket: the server is away; retried with capped backoff, forever (at
  ``close``, until its deadline).
- 503, 408, 429: retried likewise.
- No answer after the request went out (the connection dropped, a timeout) and 5xx other than
  503: retried, but first the worker asks the server whether the batch was stored after all
  (its points, matched by name, date and metadata, among the run's points since the batch's
  first): a batch the server stored whose answer was lost is not stored twice.
- 400, 413, 422: something in the batch is refused; the batch is halved until the bad point is
  alone, which is dropped and counted (the rest get through).
- Any other 4xx (no such run, a token refused): the batch is dropped and counted; resending it
  cannot help.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import httpx

from distbench.metric_value import value_text
from distbench.timefmt import format_us, now_us, to_us
from distbench.worker.backlog import Backlog
from distbench.worker.env import DEFAULT_METRICS_FLUSH_S, WorkerEnv
from distbench.worker.status import StatusFile, status_path

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 10.0
# While the server is away, a line this often (not one per attempt).
PROGRESS_LOG_S = 60.0
DROP_LOG_EVERY = 10_000


class Reporter(Protocol):
    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None: ...

    def close(self, timeout_s: float = ...) -> None: ...


class NullReporter:
    """What a worker uses when no server is configured (e.g. under plain torchrun)."""

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        return None

    def close(self, timeout_s: float = 30.0) -> None:
        return None


class Attempt(enum.Enum):
    DONE = "done"  # delivered or refused for good: the backlog moved on
    AGAIN = "again"  # try the same points again after a pause


# Answers that say the request was not stored and may be retried as it is.
RETRY_STATUSES = {408, 429, 503}
# Answers that say something in the batch is bad: halve it until the bad point is alone.
BAD_POINT_STATUSES = {400, 413, 422}


class BatchReporter:
    def __init__(
        self,
        *,
        run_id: int,
        http: httpx.Client,
        flush_interval_s: float = 1.0,
        max_batch: int = 2000,
        backlog: Backlog | None = None,
        flush_timeout_s: float = DEFAULT_METRICS_FLUSH_S,
        backoff_s: float = 0.5,
        max_backoff_s: float = MAX_BACKOFF_S,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.run_id = run_id
        self.http = http
        self.flush_interval_s = flush_interval_s
        self.max_batch = max_batch
        self.flush_timeout_s = flush_timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._backlog = backlog if backlog is not None else Backlog(spool_path=None)
        self._lock = threading.Condition()
        self._closing = threading.Event()
        # Set when ``close`` stops waiting: the sender starts no further attempt.
        self._stop = threading.Event()
        self._sleep = sleep if sleep is not None else self._stop.wait
        # Monotonic time at which ``close`` stops waiting (``cut_short`` brings it forward).
        self._deadline = math.inf
        self._posted_once = False
        # The oldest this many points went out in a post whose answer was lost.
        self._maybe_stored = 0
        # Halved on a refused batch, to find the bad point; doubled back on each success.
        self._batch_limit = max_batch
        self._away_since: float | None = None
        self._away_logged_at = 0.0
        self.reported = 0
        self.sent = 0
        self.refused = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="metric-reporter", daemon=True)
        self._thread.start()

    @property
    def waiting(self) -> int:
        """Points not delivered yet."""
        with self._lock:
            return len(self._backlog)

    def report(
        self, name: str, value: float, *, cumulative: bool = False, metadata: str = ""
    ) -> None:
        """Keep one point for the sender; never waits on the network. Past the backlog's
        bound the point is dropped, counted and logged."""
        point: dict[str, Any] = {
            "run_id": self.run_id,
            "name": name,
            "date": format_us(now_us()),
            # As text, as every value travels: JSON has no NaN or infinity.
            "value": value_text(float(value)),
            "cumulative": cumulative,
            "metadata": metadata,
        }
        encoded = json.dumps(point, separators=(",", ":")).encode()
        with self._lock:
            self.reported += 1
            try:
                kept = self._backlog.add(encoded)
            except OSError as exc:  # the spool file's disk is full or gone
                kept = False
                if self.dropped == 0:
                    log.error("metric spool file %s unwritable: %s", self._backlog.spool_path, exc)
            if not kept:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % DROP_LOG_EVERY == 0:
                    log.error(
                        "metric backlog full (%d points waiting for the server): %d points "
                        "dropped so far, the newest ones",
                        len(self._backlog),
                        self.dropped,
                    )
            waiting = len(self._backlog)
            if waiting == 1 or waiting >= self._batch_limit:
                self._lock.notify_all()

    def cut_short(self, timeout_s: float) -> None:
        """Stop waiting for delivery ``timeout_s`` from now at the latest (the worker was told
        to stop), in ``close`` or, when called before it, in the ``close`` to come."""
        with self._lock:
            self._deadline = min(self._deadline, time.monotonic() + timeout_s)
            self._lock.notify_all()

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what is waiting, for at most ``timeout_s`` (default: the reporter's
        ``flush_timeout_s``), then stop and log what could not be delivered."""
        wait_s = self.flush_timeout_s if timeout_s is None else timeout_s
        with self._lock:
            started = time.monotonic()
            self._deadline = min(self._deadline, started + wait_s)
            waiting = len(self._backlog)
            self._closing.set()
            self._lock.notify_all()
        if waiting:
            log.log(
                logging.INFO if self._away_since is None else logging.WARNING,
                "%d metric points to deliver: waiting at most %.0f s for the server",
                waiting,
                max(0.0, self._deadline - started),
            )
        progress_at = started + PROGRESS_LOG_S
        while self._thread.is_alive():
            now = time.monotonic()
            if now >= self._deadline:
                break
            if now >= progress_at:
                progress_at = now + PROGRESS_LOG_S
                log.warning(
                    "still %d metric points to deliver (%.0f s left to wait)",
                    self.waiting,
                    self._deadline - now,
                )
            self._thread.join(timeout=min(0.1, self._deadline - now))
        self._stop.set()
        with self._lock:
            self.failed = len(self._backlog)
            spooled = self._backlog.spooled
        self._log_summary(spooled)
        if not self._thread.is_alive():
            # (Closing the client or the spool under a post in progress would crash the sender.)
            with self._lock:
                self._backlog.close()
            self.http.close()

    def _log_summary(self, spooled: int) -> None:
        counts = (
            f"{self.reported} reported, {self.sent} delivered, {self.failed} not delivered, "
            f"{self.refused} refused by the server, {self.dropped} dropped (backlog full)"
        )
        if not (self.failed or self.refused or self.dropped):
            log.info("metrics: %s", counts)
            return
        where = ""
        if spooled and self._backlog.spool_path is not None:
            where = f"; {spooled} of the undelivered are in {self._backlog.spool_path}"
        log.error("metrics not all delivered: %s%s", counts, where)

    # -- the sender thread -------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.backoff_s
        try:
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch is None:
                    return
                if self._deliver(batch) is Attempt.AGAIN:
                    self._sleep(delay)
                    delay = min(delay * 2, self.max_backoff_s)
                else:
                    delay = self.backoff_s
        except Exception:
            # Points stay in the backlog: ``close`` counts them as not delivered.
            log.exception("the metric sender stopped")

    def _next_batch(self) -> list[bytes] | None:
        """The oldest points to post next, once there are some; None when closing with none
        left. After the first post (which tells someone watching that the run is training), a
        batch gathers for the flush interval unless it is full already."""
        with self._lock:
            while not self._backlog:
                if self._closing.is_set() or self._stop.is_set():
                    return None
                self._lock.wait(timeout=0.5)
            if self._posted_once and not self._closing.is_set():
                self._lock.wait_for(
                    lambda: self._closing.is_set() or len(self._backlog) >= self._batch_limit,
                    timeout=self.flush_interval_s,
                )
            self._posted_once = True
            limit = self._maybe_stored or self._batch_limit
            return self._backlog.oldest(limit)

    def _deliver(self, batch: list[bytes]) -> Attempt:
        if self._maybe_stored:
            remaining = self._not_stored(batch)
            if remaining is None:
                return Attempt.AGAIN
            with self._lock:
                self._backlog.replace_oldest(len(batch), remaining)
                self._maybe_stored = 0
                self.sent += len(batch) - len(remaining)
            if len(remaining) < len(batch):
                log.warning(
                    "a post of %d metric points whose answer was lost had been stored: not "
                    "sent again",
                    len(batch),
                )
            if not remaining:
                return Attempt.DONE
            batch = remaining
        return self._post(batch)

    def _post(self, batch: list[bytes]) -> Attempt:
        body = b"[" + b",".join(batch) + b"]"
        try:
            response = self.http.post(
                "/api/metrics/batch", content=body, headers={"Content-Type": "application/json"}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            self._away(f"{type(exc).__name__}: {exc}")  # nothing went out
            return Attempt.AGAIN
        except httpx.HTTPError as exc:
            self._maybe_stored = len(batch)
            self._away(f"{type(exc).__name__}: {exc} (checking for the batch before resending)")
            return Attempt.AGAIN
        status = response.status_code
        if status < 300:
            self._back()
            with self._lock:
                self._backlog.remove_oldest(len(batch))
                self.sent += len(batch)
                self._batch_limit = min(self.max_batch, self._batch_limit * 2)
            return Attempt.DONE
        problem = f"HTTP {status}: {response.text[:300]}"
        if status in RETRY_STATUSES:
            self._away(problem)
            return Attempt.AGAIN
        if status >= 500:
            self._maybe_stored = len(batch)
            self._away(problem)
            return Attempt.AGAIN
        self._back()
        if status in BAD_POINT_STATUSES and len(batch) > 1:
            with self._lock:
                self._batch_limit = max(1, len(batch) // 2)
            return Attempt.DONE
        with self._lock:
            self._backlog.remove_oldest(len(batch))
            self.refused += len(batch)
        log.error("the server refused %d metric points: %s", len(batch), problem)
        return Attempt.DONE

    def _not_stored(self, batch: list[bytes]) -> list[bytes] | None:
        """The points of ``batch`` the server has not stored (all or none, a batch being
        atomic); None when the server cannot tell us now."""
        points = [json.loads(raw) for raw in batch]
        names = {point["name"] for point in points}
        since_us = min(_date_us(point["date"]) for point in points) - 1
        params = {"metric_type": "run", "since": format_us(since_us)}
        if len(names) == 1:
            params["metric_filter"] = next(iter(names))
        try:
            response = self.http.get(f"/api/metrics/{self.run_id}/", params=params)
        except httpx.HTTPError as exc:
            self._away(f"{type(exc).__name__}: {exc}")
            return None
        if response.status_code in RETRY_STATUSES or response.status_code >= 500:
            self._away(f"HTTP {response.status_code}: {response.text[:300]}")
            return None
        if response.status_code != 200:
            log.warning(
                "cannot tell whether %d metric points whose answer was lost were stored "
                "(HTTP %d): sending them again, which may store them twice",
                len(batch),
                response.status_code,
            )
            return batch
        stored = collections.Counter(
            (name, _date_us(point["date"]), point["metadata"])
            for name, series in response.json().items()
            for point in series
        )
        remaining = []
        for raw, point in zip(batch, points, strict=True):
            key = (point["name"], _date_us(point["date"]), point["metadata"])
            if stored[key] > 0:
                stored[key] -= 1
            else:
                remaining.append(raw)
        return remaining

    def _away(self, problem: str) -> None:
        """The server did not take a batch: say so once, then once a minute."""
        now = time.monotonic()
        if self._away_since is None:
            self._away_since = self._away_logged_at = now
            log.warning(
                "metric post failed (%s): keeping the points and retrying every %.0f s at most",
                problem,
                self.max_backoff_s,
            )
        elif now - self._away_logged_at >= PROGRESS_LOG_S:
            self._away_logged_at = now
            with self._lock:
                waiting, spooled = len(self._backlog), self._backlog.spooled
            log.warning(
                "metric server unavailable for %.0f s (%s): %d points waiting, %d of them "
                "spooled to disk",
                now - self._away_since,
                problem,
                waiting,
                spooled,
            )

    def _back(self) -> None:
        if self._away_since is not None:
            log.warning(
                "metric server answering again after %.0f s: delivering %d waiting points",
                time.monotonic() - self._away_since,
                self.waiting,
            )
            self._away_since = None


def _date_us(text: str) -> int:
    return to_us(dt.datetime.fromisoformat(text))


def http_client(*, server_url: str, server_socket: str | None, token: str | None) -> httpx.Client:
    """An HTTP client to the server: over the relay's Unix socket when one is given (workers in
    network namespaces), else over TCP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.HTTPTransport(uds=server_socket, retries=2) if server_socket else None
    return httpx.Client(base_url=server_url, headers=headers, timeout=30, transport=transport)


def make_reporter(env: WorkerEnv) -> Reporter:
    """The reporter ``env`` asks for: a no-op without a server (plain torchrun)."""
    if env.server_url is None or env.run_id is None:
        return NullReporter()
    http = http_client(server_url=env.server_url, server_socket=env.server_socket, token=env.token)
    # Points the server cannot take yet wait beside the worker's log (bounded: see Backlog).
    spool = (
        status_path(env.status_dir, env.pod_name, StatusFile.METRICS_SPOOL)
        if env.status_dir
        else None
    )
    return BatchReporter(
        run_id=env.run_id,
        http=http,
        backlog=Backlog(spool_path=spool),
        flush_timeout_s=env.metrics_flush_s,
    )
