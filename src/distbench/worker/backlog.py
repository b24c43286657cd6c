"""The metric points a worker has not delivered yet, oldest first, in bounded space.

A server can be away for minutes (a restart, an upgrade) while its workers keep training; their
points must wait for it, and a worker must not grow without bound meanwhile. The backlog keeps
the oldest ``memory_points`` in memory, appends what comes after to a spool file (one JSON line
a point, in the run's worker directory when there is one), and beyond ``spool_points`` in all
refuses new points, which the caller counts and reports: the start of a series is kept, its end
is lost, and the worker says how much.

Not thread-safe: the reporter holds its lock around every call.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import deque
from pathlib import Path
from typing import BinaryIO

# About 150 bytes a point as JSON: 100,000 points in memory are ~15 MB of strings, a million on
# disk ~150 MB, hours of a run that reports every step while its server is away.
MEMORY_POINTS = 100_000
SPOOL_POINTS = 1_000_000
# Points moved from the spool file back into memory at a time.
REFILL_POINTS = 10_000


class Backlog:
    def __init__(
        self,
        *,
        spool_path: Path | None,
        memory_points: int = MEMORY_POINTS,
        spool_points: int = SPOOL_POINTS,
    ) -> None:
        """``spool_path``: the file for points beyond ``memory_points`` (created when first
        needed, removed by ``close`` once empty); ``None``: an unnamed temporary file."""
        self.spool_path = spool_path
        self.memory_points = memory_points
        self.spool_points = spool_points
        self._memory: deque[bytes] = deque()
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._spooled = 0  # points in the file not yet read back
        self.ever_spooled = 0

    def __len__(self) -> int:
        return len(self._memory) + self._spooled

    @property
    def spooled(self) -> int:
        return self._spooled

    def add(self, point: bytes) -> bool:
        """Keep ``point`` (one JSON object, no newline); False when the backlog is full."""
        if self._spooled == 0 and len(self._memory) < self.memory_points:
            self._memory.append(point)
            return True
        if len(self) >= self.memory_points + self.spool_points:
            return False
        writer = self._open()
        writer.write(point + b"\n")
        self._spooled += 1
        self.ever_spooled += 1
        return True

    def oldest(self, count: int) -> list[bytes]:
        """The ``count`` oldest points (fewer when there are fewer), left in place."""
        if len(self._memory) < count and self._spooled:
            self._refill()
        return [self._memory[index] for index in range(min(count, len(self._memory)))]

    def remove_oldest(self, count: int) -> None:
        """Forget the ``count`` oldest points (delivered, or refused for good)."""
        for _ in range(min(count, len(self._memory))):
            self._memory.popleft()
        if not self._memory and self._spooled:
            self._refill()

    def replace_oldest(self, count: int, points: list[bytes]) -> None:
        """Put ``points`` where the ``count`` oldest were (what remains of them to send)."""
        self.remove_oldest(count)
        self._memory.extendleft(reversed(points))

    def close(self) -> None:
        """Close the spool file; remove it when nothing is left in it."""
        for handle in (self._writer, self._reader):
            if handle is not None:
                handle.close()
        self._writer = self._reader = None
        if self.spool_path is not None and self._spooled == 0:
            with contextlib.suppress(FileNotFoundError):
                self.spool_path.unlink()

    def _open(self) -> BinaryIO:
        if self._writer is None:
            if self.spool_path is None:
                handle, name = tempfile.mkstemp(prefix="distbench-metrics-", suffix=".jsonl")
                os.close(handle)
                path = Path(name)
            else:
                path = self.spool_path
            self._writer = path.open("wb")
            self._reader = path.open("rb")
            if self.spool_path is None:
                path.unlink()  # both handles keep it; nothing is left behind on exit
        return self._writer

    def _refill(self) -> None:
        assert self._writer is not None
        assert self._reader is not None
        self._writer.flush()
        for _ in range(min(REFILL_POINTS, self._spooled)):
            self._memory.append(self._reader.readline().rstrip(b"\n"))
            self._spooled -= 1
        if self._spooled == 0:
            # All read back: start the file over instead of letting it grow for the whole run.
            self._writer.seek(0)
            self._writer.truncate()
            self._reader.seek(0)
