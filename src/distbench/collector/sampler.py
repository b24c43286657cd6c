"""The collector thread. Names are cAdvisor's (``distbench.cadvisor``); counters (``*_total``)
are stored cumulative."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from distbench.backends.base import ClusterBackend
from distbench.cadvisor import is_counter
from distbench.errors import NotFound
from distbench.store import metrics as metric_store
from distbench.store.records import MetricPoint
from distbench.timefmt import now_us

log = logging.getLogger(__name__)

LIVE_PHASES = ("Pending", "Running")


class Collector:
    def __init__(
        self,
        *,
        engine: sa.Engine,
        backend: ClusterBackend,
        interval_s: float,
        on_stored: Callable[[int], object] | None = None,
    ) -> None:
        self.engine = engine
        self.on_stored = on_stored
        self.backend = backend
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples_taken = 0
        self._last_counter: dict[tuple[str, str], float] = {}
        # The collector thread and the orchestrator (last sample of an ending run) both sample.
        self._sampling = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample_once()
            except Exception:
                log.exception("collector sample failed; trying again next interval")

    def sample_once(self) -> int:
        """Sample every live pod (Pending or Running) once; returns the points stored."""
        live = [pod.name for pod in self.backend.list_pods() if pod.phase in LIVE_PHASES]
        return self.sample_pods(live)

    def sample_pods(self, pod_names: Sequence[str]) -> int:
        """Sample these pods now, whatever their phase (the orchestrator calls this as a run
        ends, before its network is removed, so the last counters are kept)."""
        with self._sampling:
            return self._sample(pod_names)

    def _sample(self, pod_names: Sequence[str]) -> int:
        points: list[MetricPoint] = []
        for pod_name in pod_names:
            date_us = now_us()
            for name, value in self.backend.resource_counters(pod_name).items():
                if is_counter(name):
                    # A counter never goes down. Two sources can disagree slightly (a live
                    # process read from /proc, then the totals it wrote as it exited), so the
                    # series is kept monotonic rather than showing a dip that never happened.
                    value = max(float(value), self._last_counter.get((pod_name, name), 0.0))
                    self._last_counter[(pod_name, name)] = value
                points.append(
                    MetricPoint(
                        name=name,
                        date_us=date_us,
                        value=float(value),
                        pod_name=pod_name,
                        cumulative=is_counter(name),
                    )
                )
        if not points:
            return 0
        try:
            with self.engine.begin() as conn:
                metric_store.insert_points(conn=conn, points=points)
        except NotFound as exc:
            # A pod the orchestrator has not recorded yet (it is being launched); next time.
            log.debug("collector skipped a sample: %s", exc.message)
            return 0
        if self.on_stored is not None:
            self.on_stored(len(points))
        self.samples_taken += 1
        return len(points)
