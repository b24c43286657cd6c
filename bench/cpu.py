"""CPU accounting for benchmarks, from /proc: how much CPU the server (and the PostgreSQL backends
serving it) used during a phase, and how busy each core was.

Rates move with whatever else the machine runs; CPU time per request or per point moves much less,
so it tells a slow server from a busy machine.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def process_ticks(pid: int) -> int:
    """User plus system CPU ticks of ``pid`` (all its threads); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return int(fields[11]) + int(fields[12])


def core_ticks(cpu: int) -> tuple[int, int]:
    """Busy and total ticks of one core since boot."""
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == f"cpu{cpu}":
            ticks = [int(v) for v in parts[1:9]]
            return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy
    return 0, 0


def postgres_pids(database: str) -> list[int]:
    """PostgreSQL backends connected to ``database`` (their titles name it) and their parallel
    workers: the database side of the server's work."""
    titles: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            if title.startswith("postgres: "):
                titles[int(entry.name)] = title
    ours = {pid for pid, title in titles.items() if f" {database} " in title}
    for pid, title in titles.items():
        leader = re.search(r"parallel worker for PID (\d+)", title)
        if leader and int(leader.group(1)) in ours:
            ours.add(pid)
    return sorted(ours)


def busy_now(cores: tuple[int, ...], seconds: float = 1.0) -> dict[int, float]:
    """How busy each core is over the next ``seconds``, in percent."""
    before = {c: core_ticks(c) for c in cores}
    time.sleep(seconds)
    after = {c: core_ticks(c) for c in cores}
    return {c: _share(before[c], after[c]) for c in cores}


def _share(before: tuple[int, int], after: tuple[int, int]) -> float:
    return 100 * (after[0] - before[0]) / max(1, after[1] - before[1])


@dataclass(slots=True)
class CpuUse:
    """CPU seconds of the server (and database) during one phase, and each core's busy share."""

    elapsed_s: float = 0.0
    server_s: float = 0.0
    database_s: float | None = None
    core_pct: dict[int, float] = field(default_factory=dict)

    def server_each(self, count: int, unit: str) -> str:
        """The server's CPU time per ``unit``, ``count`` of them having been served."""
        return f"{_per(self.server_s, count)}/{unit}"

    def text(self, count: int, unit: str) -> str:
        """PostgreSQL's CPU per ``unit`` (``count`` were served), the server's share of its
        core, and how busy the cores were."""
        parts = []
        if self.database_s is not None:
            parts.append(f"PostgreSQL backends' CPU {_per(self.database_s, count)} per {unit}")
        parts.append(f"server process {100 * self.server_s / self.elapsed_s:.0f}% of a core")
        cores = ", ".join(f"core {c} {p:.0f}%" for c, p in sorted(self.core_pct.items()))
        return ", ".join(parts) + f"; {cores} busy"


def _per(seconds: float, count: int) -> str:
    each_us = 1e6 * seconds / max(1, count)
    if each_us < 1000:
        return f"{each_us:.1f} µs"
    return f"{each_us / 1000:.1f} ms" if each_us < 100_000 else f"{each_us / 1000:.0f} ms"


@contextmanager
def watch(server_pid: int, cores: tuple[int, ...], database: str | None) -> Iterator[CpuUse]:
    """Fills the yielded ``CpuUse`` when the block ends. ``database``: a PostgreSQL database
    whose backends' CPU is counted too (None for SQLite, which runs inside the server)."""
    use = CpuUse()
    server_before = process_ticks(server_pid)
    database_before = {p: process_ticks(p) for p in postgres_pids(database)} if database else {}
    cores_before = {c: core_ticks(c) for c in cores}
    started = time.monotonic()
    yield use
    use.elapsed_s = time.monotonic() - started
    use.server_s = (process_ticks(server_pid) - server_before) / CLOCK_TICKS_PER_S
    if database:
        # Backends that started during the phase count from zero; one that ended is lost, but
        # the server's pool keeps its connections.
        ticks = sum(process_ticks(p) - database_before.get(p, 0) for p in postgres_pids(database))
        use.database_s = ticks / CLOCK_TICKS_PER_S
    use.core_pct = {c: _share(cores_before[c], core_ticks(c)) for c in cores}
