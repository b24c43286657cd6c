"""What the orchestrator is given and what it hands out: the last-sample hook arrives through
the constructor, and the API reaches the backend only through the orchestrator's methods."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from distbench.errors import LimitUnsupported
from distbench.orchestrator import Orchestrator
from distbench.store import runs as run_store
from distbench.store.engine import create_engine
from distbench.store.records import NewRun, RunRecord
from tests.fake_backend import FakeBackend
from tests.polling import wait_for


@dataclass
class Wired:
    orchestrator: Orchestrator
    backend: FakeBackend
    # Each call of the hook: the pod names it got, and the runs the backend had stopped then.
    cleanups: list[tuple[list[str], list[int]]] = field(default_factory=list)


@pytest.fixture
def wired(migrated_database_url: str) -> Iterator[Wired]:
    engine = create_engine(migrated_database_url)
    backend = FakeBackend(supports_bandwidth=False)
    cleanups: list[tuple[list[str], list[int]]] = []
    orchestrator = Orchestrator(
        engine=engine,
        backend=backend,
        server_url="http://127.0.0.1:9",
        server_token=None,
        start_timeout_s=30,
        before_cleanup=lambda pods: cleanups.append((list(pods), list(backend.stopped))),
    )
    try:
        yield Wired(orchestrator, backend, cleanups)
    finally:
        orchestrator.close()
        engine.dispose()


def new_run(*, max_bandwidth: float | None = None) -> NewRun:
    return NewRun(
        name="wired",
        num_workers=2,
        num_cpus=1,
        max_bandwidth=max_bandwidth,
        benchmark="digits",
        backend="gloo",
    )


def launched(wired: Wired) -> RunRecord:
    run = wired.orchestrator.create_run(new_run())

    def pods_recorded() -> RunRecord | None:
        with wired.orchestrator.engine.connect() as conn:
            stored = run_store.get_run(conn=conn, run_id=run.id)
        return stored if stored.job_metadata.get("pods") else None

    return wait_for(pods_recorded, what="the run's pods on record", timeout_s=10)


def test_the_hook_given_at_construction_samples_the_pods_before_they_stop(wired: Wired) -> None:
    run = launched(wired)
    wired.backend.finish(run.id)

    def stopped() -> list[int] | None:
        wired.orchestrator.poll_once()
        return wired.backend.stopped or None

    assert wait_for(stopped, what="the finished run's workers stopped", timeout_s=10) == [run.id]
    assert wired.cleanups == [(list(run.job_metadata["pods"]), [])]


def test_the_api_sees_the_backend_only_through_the_orchestrator(wired: Wired) -> None:
    # No ``backend`` attribute to reach through: routes use the methods below.
    assert not hasattr(wired.orchestrator, "backend")
    assert wired.orchestrator.backend_name == "fake"
    run = launched(wired)
    assert [pod.name for pod in wired.orchestrator.list_pods()] == run.job_metadata["pods"]
    assert wired.orchestrator.logs(run) == wired.backend.logs(run)
    with pytest.raises(LimitUnsupported):
        wired.orchestrator.check(new_run(max_bandwidth=100))
