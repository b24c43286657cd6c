"""Metric values that are text, in the store: migration 0004 adds their column and keeps every
row (on both databases); text and NaN come back apart; downsampling, in SQL and in memory,
picks numbers only."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command

from distbench.store import metrics as metric_store
from distbench.store import schema
from distbench.store.engine import create_engine
from distbench.store.metrics import PointRow, SeriesQuery
from distbench.store.records import MetricPoint
from tests.store.helpers import count, insert_run, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_upgrade_to_0004_keeps_metrics_and_downgrade_drops_text_points(
    engine: sa.Engine,
) -> None:
    migrate(engine, "0003")
    with engine.begin() as conn:
        insert_run(conn, 1, "FINISHED")
        conn.execute(
            sa.text(
                "INSERT INTO metrics (run_id, name, date_us, value, cumulative, metadata) "
                "VALUES (1, 'loss', 1, 0.5, false, ''), (1, 'loss', 2, NULL, false, '')"
            )
        )

    migrate(engine, "0004")

    with engine.begin() as conn:
        metric_store.insert_points(
            conn=conn, points=[MetricPoint(name="TaskResult", date_us=3, value="done", run_id=1)]
        )
        series = metric_store.read_series(conn=conn, run_id=1)
    assert series["TaskResult"] == [(3, "done", False, "")]
    assert series["loss"][0][1] == 0.5
    assert math.isnan(float(series["loss"][1][1]))

    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0003")
    with engine.begin() as conn:
        # The numbers stay; a text point cannot be one, so it goes.
        assert count(conn, "metrics") == 2
        columns = {c["name"] for c in sa.inspect(conn).get_columns("metrics")}
    assert "text_value" not in columns


@pytest.fixture
def migrated(migrated_database_url: str) -> Iterator[sa.Engine]:
    engine = create_engine(migrated_database_url)
    with engine.begin() as conn:
        insert_run(conn, 1, "FINISHED")
    yield engine
    engine.dispose()


def points(*values: float | str) -> list[MetricPoint]:
    return [
        MetricPoint(name="m", date_us=index, value=value, run_id=1)
        for index, value in enumerate(values)
    ]


def test_text_and_nan_come_back_apart(migrated: sa.Engine) -> None:
    sentence = "Goal reached: 80 % in 12.5 s \u2713"
    with migrated.begin() as conn:
        metric_store.insert_points(conn=conn, points=points(1.5, math.nan, sentence, "nan!"))

    with migrated.connect() as conn:
        whole = metric_store.read_series(conn=conn, run_id=1)["m"]
        newest = metric_store.read_series(conn=conn, run_id=1, spec=SeriesQuery(last_n=2))["m"]

    values = [point[1] for point in whole]
    assert values[0] == 1.5
    assert isinstance(values[1], float)
    assert math.isnan(values[1])
    assert values[2:] == [sentence, "nan!"]
    assert [point[1] for point in newest] == [sentence, "nan!"]


def test_downsampling_in_sql_picks_numbers_only(migrated: sa.Engine) -> None:
    values: list[float | str] = [1.0 + (i % 5) / 10 for i in range(100)]
    values[10], values[50] = 99.0, -99.0
    values[0] = values[30] = values[99] = "a note"
    with migrated.begin() as conn:
        metric_store.insert_points(conn=conn, points=points(*values))

    with migrated.connect() as conn:
        chosen = metric_store.read_series(conn=conn, run_id=1, spec=SeriesQuery(max_points=10))

    kept = [point[1] for point in chosen["m"]]
    assert 2 <= len(kept) <= 10
    assert "a note" not in kept
    assert {99.0, -99.0} <= set(kept)


def row(date_us: int, value: float | str) -> PointRow:
    return (date_us, value, False, "")


def test_downsampling_in_memory_picks_numbers_only() -> None:
    rows = [row(i, 1.0 + (i % 5) / 10) for i in range(100)]
    rows[10], rows[50] = row(10, 99.0), row(50, -99.0)
    rows[0], rows[30], rows[99] = row(0, "a"), row(30, "b"), row(99, "c")

    kept = [point[1] for point in metric_store.downsample_rows(rows, 10)]
    only_text = metric_store.downsample_rows([row(i, f"line {i}") for i in range(20)], 4)

    assert 2 <= len(kept) <= 10
    assert not [value for value in kept if isinstance(value, str)]
    assert {99.0, -99.0} <= set(kept)
    # A series of text only: its first points, as in SQL.
    assert [point[1] for point in only_text] == ["line 0", "line 1", "line 2", "line 3"]
