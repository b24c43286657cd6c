"""The collector: samples every Running pod's counters into pod metrics under cAdvisor's names,
counters cumulative, and keeps going when a sample cannot be stored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
import sqlalchemy as sa

from distbench.cadvisor import RESOURCE_METRICS, is_counter
from distbench.collector import Collector
from distbench.store import metrics as metric_store
from distbench.store import pods as pod_store
from distbench.store import runs as run_store
from distbench.store.engine import create_engine
from distbench.store.records import NewRun, RunRecord
from tests.backends.local_helpers import wait_for
from tests.fake_backend import FakeBackend


class CountingBackend(FakeBackend):
    """A fake whose pods report every cAdvisor metric, the counters rising on each read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def resource_counters(self, pod_name: str) -> Mapping[str, float]:
        if not super().resource_counters(pod_name):
            return {}
        self.reads += 1
        return {
            name: (float(self.reads) if is_counter(name) else 1e6 + self.reads)
            for name in RESOURCE_METRICS
        }


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(migrated_database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def launched_run(engine: sa.Engine, backend: FakeBackend, *, record_pods: bool = True) -> RunRecord:
    with engine.begin() as conn:
        run = run_store.create_run(
            conn=conn,
            new=NewRun(
                name="sampled",
                num_workers=2,
                num_cpus=1,
                max_bandwidth=None,
                benchmark="digits",
                backend="gloo",
            ),
        )
    report = backend.launch(run, server_url="http://127.0.0.1:9", run_token=None)
    if record_pods:
        with engine.begin() as conn:
            for pod in report.pods:
                pod_store.record_pod(
                    conn=conn,
                    name=pod.name,
                    run_id=run.id,
                    rank=pod.rank,
                    labels=pod.labels,
                    ip=pod.ip,
                )
    return run


def pod_series(engine: sa.Engine, pod_name: str) -> metric_store.Series:
    with engine.connect() as conn:
        return metric_store.read_series(conn=conn, pod_name=pod_name)


def test_running_pods_are_sampled_under_cadvisor_names(engine: sa.Engine) -> None:
    backend = CountingBackend()
    run = launched_run(engine, backend)
    collector = Collector(engine=engine, backend=backend, interval_s=60)

    assert collector.sample_once() == 2 * len(RESOURCE_METRICS)
    assert collector.sample_once() == 2 * len(RESOURCE_METRICS)
    assert collector.samples_taken == 2

    series = pod_series(engine, f"distbench-worker-{run.id}-0")
    assert set(series) == set(RESOURCE_METRICS)
    for name, points in series.items():
        assert len(points) == 2
        dates = [point[0] for point in points]
        assert dates == sorted(dates)
        cumulative = {point[2] for point in points}
        assert cumulative == {name.endswith("_total")}
    assert series["container_memory_usage_bytes"][0][2] is False
    assert series["container_cpu_usage_seconds_total"][0][2] is True


def test_pods_that_are_not_running_are_not_sampled(engine: sa.Engine) -> None:
    backend = CountingBackend()
    run = launched_run(engine, backend)
    collector = Collector(engine=engine, backend=backend, interval_s=60)
    assert collector.sample_once() > 0
    backend.finish(run.id)

    assert collector.sample_once() == 0
    # What was sampled while it ran is kept.
    assert pod_series(engine, f"distbench-worker-{run.id}-1")


def test_a_sample_of_unrecorded_pods_is_skipped_and_sampling_goes_on(engine: sa.Engine) -> None:
    backend = CountingBackend()
    run = launched_run(engine, backend, record_pods=False)
    collector = Collector(engine=engine, backend=backend, interval_s=60)
    # Pods the orchestrator has not recorded yet (still launching): nothing stored, no error.
    assert collector.sample_once() == 0
    assert collector.samples_taken == 0

    with engine.begin() as conn:
        for rank in range(2):
            pod_store.record_pod(
                conn=conn,
                name=f"distbench-worker-{run.id}-{rank}",
                run_id=run.id,
                rank=rank,
                labels={},
                ip="198.18.0.2",
            )
    assert collector.sample_once() == 2 * len(RESOURCE_METRICS)


def test_collector_thread_samples_on_its_interval_until_closed(engine: sa.Engine) -> None:
    backend = CountingBackend()
    run = launched_run(engine, backend)
    collector = Collector(engine=engine, backend=backend, interval_s=0.05)
    collector.start()
    try:
        wait_for(lambda: collector.samples_taken >= 3, what="three samples", timeout_s=10)
    finally:
        collector.close()
    taken = collector.samples_taken
    points = pod_series(engine, f"distbench-worker-{run.id}-0")["container_cpu_usage_seconds_total"]
    assert len(points) == taken
    values = [point[1] for point in points]
    assert values == sorted(values)
