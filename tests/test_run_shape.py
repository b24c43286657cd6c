"""A run's shape has one definition, ``store.records.RunRecord``: the table has a column per
field, the store reads rows and writes ``NewRun``s by name, the API's ``RunPublic`` serves the
same fields in the same order, and the client's ``Run`` reads every one of them back. A column
added in one place and missed in another fails here."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from distbench.api.export import RUN_JSON_FIELDS
from distbench.api.schemas import RunPublic, run_public
from distbench.client import Run
from distbench.client.records import parse_run
from distbench.run_state import RunState
from distbench.store import runs as run_store
from distbench.store.engine import create_engine
from distbench.store.records import NewRun, RunRecord
from distbench.store.tables import runs

RECORD_FIELDS = [field.name for field in dataclasses.fields(RunRecord)]
# What the store decides for a new run, beside what the caller asks for (``NewRun``).
STORE_DECIDES = {"id", "created_at", "started_at", "finished_at", "state", "job_id"}


def test_the_table_has_a_column_per_record_field() -> None:
    assert [column.name for column in runs.columns] == RECORD_FIELDS


def test_a_new_run_is_the_record_less_what_the_store_decides() -> None:
    asked = {field.name for field in dataclasses.fields(NewRun)}

    assert asked | STORE_DECIDES == set(RECORD_FIELDS)
    assert not asked & STORE_DECIDES


def test_the_api_serves_the_record_fields_in_their_order() -> None:
    assert list(RunPublic.model_fields) == RECORD_FIELDS


def test_the_client_reads_every_field_the_api_serves() -> None:
    client_fields = [field.name for field in dataclasses.fields(Run) if field.name != "raw"]

    assert set(client_fields) == set(RunPublic.model_fields)


def test_a_downloads_run_json_names_record_fields() -> None:
    assert set(RUN_JSON_FIELDS) <= set(RECORD_FIELDS)


def _every_field_set() -> RunRecord:
    """A record with no field at its default, so a field dropped on the way shows up."""
    return RunRecord(
        id=7,
        name="shape",
        created_at=dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
        started_at=dt.datetime(2026, 1, 2, 3, 5, 0, tzinfo=dt.UTC),
        finished_at=dt.datetime(2026, 1, 2, 4, 0, 0, 1, tzinfo=dt.UTC),
        state=RunState.FINISHED,
        job_id="5b0c8c0e-6f7a-4a55-9a3e-1f2d3c4b5a69",
        job_metadata={"result": {"accuracy": 0.9}},
        num_workers=3,
        num_cpus=1.5,
        max_bandwidth=100.0,
        benchmark="command",
        backend="nccl",
        options={"lr": 0.1},
        time_limit_s=600.0,
        start_timeout_s=30.0,
        gpu=True,
        command=["python", "train.py"],
        working_dir="/srv/work",
    )


def test_a_record_survives_the_api_and_the_client_field_by_field() -> None:
    record = _every_field_set()
    body = json.loads(RunPublic.model_validate(run_public(record)).model_dump_json())

    run = parse_run(body)

    assert {name: getattr(run, name) for name in RECORD_FIELDS} == dataclasses.asdict(record)
    assert body["state"] == "FINISHED"


@pytest.fixture
def conn(migrated_database_url: str) -> Iterator[sa.Connection]:
    engine = create_engine(migrated_database_url)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def test_a_new_run_survives_the_store_field_by_field(conn: sa.Connection) -> None:
    asked = NewRun(
        name="shape",
        num_workers=2,
        num_cpus=0.5,
        max_bandwidth=10.0,
        benchmark="command",
        backend="mpi",
        options={"seed": 3},
        time_limit_s=60.0,
        start_timeout_s=5.0,
        gpu=True,
        command=["python", "-c", "pass"],
        working_dir="/tmp",
        job_metadata={"source": "test"},
    )

    stored = run_store.create_run(conn=conn, new=asked)
    read: dict[str, Any] = {
        name: getattr(run_store.get_run(conn=conn, run_id=stored.id), name)
        for name in RECORD_FIELDS
    }

    assert {name: read[name] for name in dataclasses.asdict(asked)} == dataclasses.asdict(asked)
    assert read["state"] is RunState.INITIALIZED
    assert read["created_at"].tzinfo is dt.UTC
    assert (read["started_at"], read["finished_at"]) == (None, None)
