"""Database faults are told apart from bad statements: the first are a 503 the client retries,
the second stay a 500 (a bug of ours, which a 503 would hide)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from distbench.ports import free_port
from distbench.store.faults import unavailable_reason


def raised(engine: sa.Engine, statement: str) -> sa.exc.SQLAlchemyError:
    with pytest.raises(sa.exc.SQLAlchemyError) as caught, engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()
    return caught.value


def test_a_bad_statement_is_no_fault_of_the_database(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")

    assert unavailable_reason(raised(engine, "SELECT * FROM no_such_table")) is None
    assert unavailable_reason(raised(engine, "SELEKT 1")) is None


def test_a_read_only_sqlite_file_is_read_only(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    with sa.create_engine(f"sqlite:///{path}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (a INTEGER)"))
    read_only = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")

    assert unavailable_reason(raised(read_only, "INSERT INTO t VALUES (1)")) == "read-only"


def test_a_sqlite_file_that_cannot_be_opened_is_unreachable(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")

    assert unavailable_reason(raised(engine, "SELECT 1")) == "unreachable"


def test_a_postgres_nobody_listens_for_is_unreachable() -> None:
    engine = sa.create_engine(
        f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x",
        connect_args={"connect_timeout": 3},
    )

    assert unavailable_reason(raised(engine, "SELECT 1")) == "unreachable"


def test_errors_outside_the_driver_are_not_faults() -> None:
    assert unavailable_reason(ValueError("no")) is None
    assert unavailable_reason(sa.exc.ArgumentError("bad argument")) is None
