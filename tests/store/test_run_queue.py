"""The run queue in the store: migration 0003 (the QUEUED state) keeps every row of a database
it upgrades, on both databases; queued runs stay outside the one-active-run rule; a run that
does not queue may not overtake queued ones; the queue starts in creation order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from distbench.errors import RunActive
from distbench.store import runs as run_store
from distbench.store import schema
from distbench.store.engine import create_engine
from distbench.store.records import NewRun
from tests.store.helpers import NOW, count, insert_run, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_to_0003_keeps_pods_and_metrics_and_admits_queued(engine: sa.Engine) -> None:
    migrate(engine, "0002")
    with engine.begin() as conn:
        insert_run(conn, 1, "FINISHED")
        conn.execute(
            sa.text(
                "INSERT INTO pods (name, run_id, rank, labels, ip, created_at) "
                "VALUES ('pod-1', 1, 0, '{}', '', :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            sa.text(
                "INSERT INTO metrics (run_id, name, date_us, value, cumulative, metadata) "
                "VALUES (1, 'loss', 1, 0.5, false, '')"
            )
        )

    migrate(engine, "0003")

    with engine.begin() as conn:
        # Rebuilding the runs table on SQLite would have cascade-deleted these.
        assert (count(conn, "pods"), count(conn, "metrics")) == (1, 1)
        insert_run(conn, 2, "QUEUED")
        insert_run(conn, 3, "QUEUED")
        insert_run(conn, 4, "STARTED")
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_run(conn, 5, "INITIALIZED")  # still one active run at most
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_run(conn, 6, "WAITING")  # still a check on the states

    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0002")
    with engine.begin() as conn:
        states = conn.execute(sa.text("SELECT id, state FROM runs ORDER BY id")).all()
        assert [tuple(row) for row in states] == [
            (1, "FINISHED"),
            (2, "ABORTED"),
            (3, "ABORTED"),
            (4, "STARTED"),
        ]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_run(conn, 7, "QUEUED")


def new_run(name: str) -> NewRun:
    return NewRun(
        name=name, num_workers=1, num_cpus=1, max_bandwidth=None, benchmark="digits", backend="gloo"
    )


def test_queue_starts_in_creation_order_one_active_at_a_time(engine: sa.Engine) -> None:
    schema.upgrade(engine)
    with engine.begin() as conn:
        first = run_store.create_run(conn=conn, new=new_run("first"), queued=True)
        second = run_store.create_run(conn=conn, new=new_run("second"), queued=True)
        assert (first.state, second.state) == ("QUEUED", "QUEUED")
        # Nothing active, but runs wait: a run that does not queue would overtake them.
        with pytest.raises(RunActive) as caught:
            run_store.create_run(conn=conn, new=new_run("jumper"))
        assert caught.value.details == {"queued_run_ids": [first.id, second.id]}

        started = run_store.start_next_queued(conn=conn)
        assert started is not None
        assert (started.id, started.state) == (first.id, "INITIALIZED")
        assert run_store.start_next_queued(conn=conn) is None  # one is active
        run_store.transition(
            conn=conn, run_id=first.id, to_state="FINISHED", from_states=("INITIALIZED",)
        )
        following = run_store.start_next_queued(conn=conn)
        assert following is not None
        assert following.id == second.id
        assert run_store.queued_run_ids(conn=conn) == []
        assert [run.name for run in run_store.list_runs(conn=conn)] == ["second", "first"]
