"""How long a run's token may post: while the run is active, then ``run_token_grace_s`` more.

A worker's last points can arrive after its run ended (its reporter flushes on the way out, or
retries while the server restarts), so the token does not stop at the end itself; but it must
stop, or a token leaked from a run long finished could still write into it.

Workers post many times a second, so the end time is cached: once a run ended it never changes,
and an active run is looked up again at most every ``recheck_s``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from distbench.errors import Forbidden, NotFound
from distbench.store import runs as run_store


@dataclass(frozen=True, slots=True)
class _Seen:
    ended_at: dt.datetime | None  # None: active, or no such run (the write answers 404)
    state: str
    checked_s: float


class RunTokenGrace:
    def __init__(
        self,
        *,
        engine: sa.Engine,
        grace_s: float,
        clock: Callable[[], float] = time.time,
        recheck_s: float = 1.0,
    ) -> None:
        self.engine = engine
        self.grace_s = grace_s
        self.clock = clock
        self.recheck_s = recheck_s
        self._seen: dict[int, _Seen] = {}

    def needs_lookup(self, run_id: int) -> bool:
        """Whether ``check`` would have to ask the database (callers then do so off the loop)."""
        seen = self._seen.get(run_id)
        if seen is None:
            return True
        return seen.ended_at is None and self.clock() - seen.checked_s >= self.recheck_s

    def look_up(self, run_id: int) -> None:
        with self.engine.connect() as conn:
            try:
                run = run_store.get_run(conn=conn, run_id=run_id)
            except NotFound:
                self._seen[run_id] = _Seen(None, "", self.clock())
                return
        # An ended run without an end date (a row from before they were recorded) counts as
        # ended when it was created, rather than never.
        ended_at = None if run.is_active else (run.finished_at or run.created_at)
        self._seen[run_id] = _Seen(ended_at, run.state, self.clock())

    def check(self, run_id: int) -> None:
        """Forbidden once the run ended more than ``grace_s`` ago."""
        if self.needs_lookup(run_id):
            self.look_up(run_id)
        seen = self._seen[run_id]
        if seen.ended_at is None:
            return
        if self.clock() - seen.ended_at.timestamp() <= self.grace_s:
            return
        ended = seen.ended_at.astimezone(dt.UTC).isoformat(timespec="seconds")
        raise Forbidden(
            f"run {run_id} ended ({seen.state}) at {ended}: its run token may post only until "
            f"{self.grace_s:g} s after the run ended",
            details={"run_id": run_id, "state": seen.state, "grace_s": self.grace_s},
        )
