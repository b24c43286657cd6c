"""Pods the system has created. Kept after the pod is gone, so its resource history stays served."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from distbench.store.tables import pods


def record_pod(
    *,
    conn: sa.Connection,
    name: str,
    run_id: int | None,
    rank: int | None,
    labels: Mapping[str, str],
    ip: str,
) -> None:
    """Remember a pod (idempotent: a pod seen again after a restart keeps its first record)."""
    exists = conn.execute(sa.select(pods.c.name).where(pods.c.name == name)).first()
    if exists is not None:
        conn.execute(sa.update(pods).where(pods.c.name == name).values(ip=ip, labels=dict(labels)))
        return
    conn.execute(
        pods.insert().values(
            name=name,
            run_id=run_id,
            rank=rank,
            labels=dict(labels),
            ip=ip,
            created_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        )
    )


def existing_pod_names(*, conn: sa.Connection, names: Iterable[str]) -> set[str]:
    wanted = set(names)
    if not wanted:
        return set()
    return set(conn.execute(sa.select(pods.c.name).where(pods.c.name.in_(wanted))).scalars())


def pod_names_of_run(*, conn: sa.Connection, run_id: int) -> list[str]:
    query = sa.select(pods.c.name).where(pods.c.run_id == run_id).order_by(pods.c.rank)
    return list(conn.execute(query).scalars())
