"""Faults of the database itself, told apart from bugs in our queries, and a probe that finds them.

A read-only or failing SQLite file, or a PostgreSQL that is down, used to reach clients as a 500
``internal_error`` while ``/api/health`` said ok (``SELECT 1`` still worked). These are the
operator's to fix and the client's to retry: the API answers 503 with ``Retry-After``, and health
runs the same kind of write the endpoints run.
"""

from __future__ import annotations

import sqlalchemy as sa

# SQLite result codes (their primary names; extended ones such as SQLITE_IOERR_WRITE or
# SQLITE_READONLY_DBMOVED start with these) that mean the file, not the statement, is at fault.
_SQLITE_FAULTS = {
    "SQLITE_READONLY": "read-only",
    "SQLITE_PERM": "read-only",
    "SQLITE_IOERR": "failing",
    "SQLITE_FULL": "failing",
    "SQLITE_CORRUPT": "failing",
    "SQLITE_NOTADB": "failing",
    "SQLITE_CANTOPEN": "unreachable",
    "SQLITE_BUSY": "busy",
    "SQLITE_LOCKED": "busy",
}
# PostgreSQL SQLSTATE classes: 08 connection exception, 53 insufficient resources (disk full,
# too many connections), 57 operator intervention (shutdown, database not accepting
# connections), 58 system error (I/O); and 25006, a read-only transaction (a hot standby).
_POSTGRES_FAULT_CLASSES = {
    "08": "unreachable",
    "53": "failing",
    "57": "unreachable",
    "58": "failing",
}
_POSTGRES_READ_ONLY = "25006"


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database cannot serve (``read-only``, ``unreachable``, ``failing``, ``busy``), or
    None when ``exc`` is not a fault of the database but, say, a bad statement (a bug: a 500)."""
    if isinstance(exc, sa.exc.TimeoutError):
        return "busy"  # no pooled connection came free in time
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    if exc.connection_invalidated:
        return "unreachable"  # the connection broke under the statement
    driver_error = exc.orig
    sqlite_name = getattr(driver_error, "sqlite_errorname", None)
    if isinstance(sqlite_name, str):
        for prefix, reason in _SQLITE_FAULTS.items():
            if sqlite_name.startswith(prefix):
                return reason
        return None
    sqlstate = getattr(driver_error, "sqlstate", None)
    if isinstance(sqlstate, str):
        if sqlstate == _POSTGRES_READ_ONLY:
            return "read-only"
        return _POSTGRES_FAULT_CLASSES.get(sqlstate[:2])
    # No server code at all: the connection failed before the server answered.
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return "unreachable"
    return None


def probe(engine: sa.Engine) -> None:
    """Read and write the database as the endpoints do, or raise the database's error.

    ``SELECT 1`` succeeds on a read-only file, so this also commits a write that changes nothing
    (the schema version row, set to itself); on SQLite a pooled connection learns that its file
    became unwritable only when it commits."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = version_num"))
