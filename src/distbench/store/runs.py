"""Reading and writing runs. Every state change goes through ``transition``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from distbench.errors import NotFound, RunActive
from distbench.run_state import ACTIVE_STATES, RunState
from distbench.store.records import NewRun, RunRecord
from distbench.store.tables import runs
from distbench.timefmt import format_dt


def _naive_utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# A record has a field per column of ``runs`` (tests/test_run_shape.py holds them
# equal), so a row becomes a record by name; only the values that need converting are named.
_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(RunRecord))


def _utc(naive: dt.datetime | None) -> dt.datetime | None:
    return None if naive is None else naive.replace(tzinfo=dt.UTC)


def _record(row: sa.Row[Any]) -> RunRecord:
    m = row._mapping
    values = {name: m[name] for name in _RECORD_FIELDS}
    values.update(
        created_at=m["created_at"].replace(tzinfo=dt.UTC),
        started_at=_utc(m["started_at"]),
        finished_at=_utc(m["finished_at"]),
        state=RunState(m["state"]),
        job_metadata=dict(m["job_metadata"]),
        options=dict(m["options"]),
        # SQLite hands back 0 and 1.
        gpu=bool(m["gpu"]),
        command=list(m["command"]) if m["command"] is not None else None,
    )
    return RunRecord(**values)


def create_run(*, conn: sa.Connection, new: NewRun, queued: bool = False) -> RunRecord:
    """Insert a run in state INITIALIZED, or raise ``RunActive`` if one is active or runs are
    queued (starting now would jump the queue). With ``queued``, insert it QUEUED instead, to
    be started in its turn (``start_next_queued``): never refused for another run.

    The unique index ``uq_runs_one_active`` decides, so racing requests cannot both win. The
    insert runs in a savepoint so a refusal leaves the caller's transaction usable.
    """
    # What the caller asked for, field by field, plus what the store decides.
    values = {field.name: getattr(new, field.name) for field in dataclasses.fields(NewRun)}
    values.update(
        created_at=_naive_utc_now(),
        state=RunState.QUEUED if queued else RunState.INITIALIZED,
        job_id=str(uuid.uuid4()),
        job_metadata=dict(new.job_metadata),
    )
    try:
        with conn.begin_nested():
            run_id = conn.execute(runs.insert().values(values).returning(runs.c.id)).scalar_one()
            if not queued:
                # After the insert, so an active run is refused as it always was; raising
                # here rolls the savepoint, and with it the insert, back.
                _refuse_if_runs_wait(conn)
    except sa.exc.IntegrityError as exc:
        active = conn.execute(
            sa.select(runs.c.id, runs.c.state).where(runs.c.state.in_(ACTIVE_STATES))
        ).first()
        if active is None:  # lost a race with a run that has since ended; not a 409
            raise
        raise RunActive(
            f"run {active.id} is {active.state}: wait for it to end or abort it with "
            f"DELETE /api/runs/{active.id}/ before starting another (or send queue: true "
            "to start it after this one)",
            details={"active_run_id": active.id},
        ) from exc
    return get_run(conn=conn, run_id=run_id)


def _refuse_if_runs_wait(conn: sa.Connection) -> None:
    """A run that does not queue may not start while others wait their turn, even between two
    of them (the queue would be overtaken). The index does not see queued runs, so this is a
    plain check: a queued run posted at the very same moment may lose its place to this one,
    which is no worse than having been posted a moment later."""
    waiting = queued_run_ids(conn=conn)
    if waiting:
        raise RunActive(
            f"{len(waiting)} run(s) wait in the queue (first: run {waiting[0]}): send "
            "queue: true to start this one after them, or abort them with "
            f"DELETE /api/runs/{waiting[0]}/",
            details={"queued_run_ids": waiting},
        )


def queued_run_ids(*, conn: sa.Connection) -> list[int]:
    """The queue, first in line first (creation order)."""
    return list(
        conn.execute(
            sa.select(runs.c.id).where(runs.c.state == RunState.QUEUED).order_by(runs.c.id)
        )
        .scalars()
        .all()
    )


def start_next_queued(*, conn: sa.Connection) -> RunRecord | None:
    """Move the first queued run to INITIALIZED, if no run is active. Returns it, or None when
    the queue is empty or a run is active (the one-active-run index refuses the move, so two
    servers or threads doing this at once start one run, never two)."""
    waiting = queued_run_ids(conn=conn)
    if not waiting:
        return None
    # Checked first so a waiting queue does not hit the index (an error in PostgreSQL's log)
    # at every poll; the index still decides when this check races another start.
    if conn.execute(sa.select(runs.c.id).where(runs.c.state.in_(ACTIVE_STATES))).first():
        return None
    try:
        with conn.begin_nested():
            return transition(
                conn=conn,
                run_id=waiting[0],
                to_state=RunState.INITIALIZED,
                from_states=(RunState.QUEUED,),
                # When its turn came (started_at is when its workers all joined, later).
                metadata_update={"dequeued_at": format_dt(_naive_utc_now().replace(tzinfo=dt.UTC))},
            )
    except sa.exc.IntegrityError:
        return None


def get_run(*, conn: sa.Connection, run_id: int) -> RunRecord:
    row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run with id {run_id}", details={"run_id": run_id})
    return _record(row)


def list_runs(*, conn: sa.Connection) -> list[RunRecord]:
    """All runs, newest first."""
    rows = conn.execute(sa.select(runs).order_by(runs.c.id.desc())).all()
    return [_record(row) for row in rows]


def active_runs(*, conn: sa.Connection) -> list[RunRecord]:
    rows = conn.execute(sa.select(runs).where(runs.c.state.in_(ACTIVE_STATES))).all()
    return [_record(row) for row in rows]


def existing_run_ids(*, conn: sa.Connection, run_ids: Iterable[int]) -> set[int]:
    wanted = set(run_ids)
    if not wanted:
        return set()
    found = conn.execute(sa.select(runs.c.id).where(runs.c.id.in_(wanted))).scalars()
    return set(found)


def transition(
    *,
    conn: sa.Connection,
    run_id: int,
    to_state: RunState,
    from_states: Iterable[RunState],
    metadata_update: Mapping[str, Any] | None = None,
) -> RunRecord | None:
    """Move a run from one of ``from_states`` to ``to_state``, merging ``metadata_update``
    into ``job_metadata``. Returns the new record, or None if the run was not in ``from_states``
    (someone else moved it first: aborts and failures race, and the first one wins).
    """
    allowed = tuple(from_states)
    query = sa.select(runs).where(runs.c.id == run_id, runs.c.state.in_(allowed))
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    changes: dict[str, Any] = {"state": to_state}
    if metadata_update:
        changes["job_metadata"] = {**row._mapping["job_metadata"], **metadata_update}
    now = _naive_utc_now()
    if to_state == RunState.STARTED:
        changes["started_at"] = now
    elif to_state not in ACTIVE_STATES:
        changes["finished_at"] = now
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(changes))
    return get_run(conn=conn, run_id=run_id)


def update_metadata(*, conn: sa.Connection, run_id: int, update: Mapping[str, Any]) -> RunRecord:
    """Merge ``update`` into a run's ``job_metadata`` without touching its state."""
    query = sa.select(runs.c.job_metadata).where(runs.c.id == run_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    current = conn.execute(query).scalar_one_or_none()
    if current is None:
        raise NotFound(f"no run with id {run_id}", details={"run_id": run_id})
    merged = {**current, **update}
    conn.execute(sa.update(runs).where(runs.c.id == run_id).values(job_metadata=merged))
    return get_run(conn=conn, run_id=run_id)
