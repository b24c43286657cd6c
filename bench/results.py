"""Printing a benchmark's results and keeping them in ``bench/RESULTS.md``.

``RESULTS.md`` has one ``## Section`` per benchmark script and, inside it, one ``### Database``
part per database; recording replaces that part (or adds it) and leaves everything else alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HEADER = """# Benchmark results

Numbers printed by the scripts in `bench/`, recorded with their `--record` option: the date, the
machine, the database and the exact command are given with each set so it can be rerun.
Performance is measured here, never asserted in tests.
"""

INGEST_INTRO = """## Ingest

`bench/ingest.py` starts the real `distbench serve` pinned to one core (`taskset`) and drives it
from the other: single-point `POST /api/metrics` from concurrent keep-alive connections, batches
through `POST /api/metrics/batch`, and reads of one run's 200,000-point series, raw and with
`max_points=1000` (time from sending the GET to holding the whole body).

For scale, measured on the same two-core set-up when the targets were set: the MLflow 3.17
tracking server (SQLite) did about 80 log-metric requests/s and 4,700 log-batch points/s and took
2.1 s to return 25,000 points; FastAPI merely echoing the body did about 4,600 requests/s; SQLite
inserted about 290,000 rows/s at 1,000 rows per transaction.

The machine may be running other work (other sessions' test suites share these two cores): each
set says how busy the cores were just before it started and, per measure, the server's CPU time
per request, point or GET, which such interference changes much less than the rates. To see where
the server's time goes, run the script with `--profile DIR` (py-spy) in a separate run.
"""


@dataclass(frozen=True, slots=True)
class Row:
    """One measure against its target. ``server_cpu``: the server's CPU per request or point,
    which other work on the machine changes much less than it changes ``result``."""

    measure: str
    result: str
    target: str
    met: bool
    server_cpu: str
    notes: list[str]


@dataclass(frozen=True, slots=True)
class Report:
    database: str  # "SQLite 3.40.1": the first word names the part of the section
    date: str
    machine: str
    command: str
    pinning: str
    rows: list[Row]

    @property
    def heading(self) -> str:
        return f"### {self.database.split()[0]}"

    def table(self) -> str:
        header = ("measure", "result", "target", "met", "server CPU")
        cells = [
            (r.measure, r.result, r.target, "yes" if r.met else "NO", r.server_cpu)
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            cells = (f"{text:<{width}}" for text, width in zip(row, widths, strict=True))
            return "  ".join(cells).rstrip()

        lines = [f"\n{self.database}; {self.pinning}", f"{self.machine}\n", line(header)]
        for row, texts in zip(self.rows, cells, strict=True):
            lines.append(line(texts))
            lines += [f"    {note}" for note in row.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            self.heading,
            "",
            f"{self.database}, recorded {self.date}. Machine: {self.machine}. {self.pinning}.",
            "",
            "```",
            self.command,
            "```",
            "",
            "| Measure | Result | Target | Met | Server CPU |",
            "|---|---|---|---|---|",
        ]
        for r in self.rows:
            target = r.target.replace(">=", "≥").replace("<=", "≤")
            met = "yes" if r.met else "**no**"
            lines.append(f"| {r.measure} | {r.result} | {target} | {met} | {r.server_cpu} |")
        lines.append("")
        lines += [f"- {r.measure}: {'; '.join(r.notes)}." for r in self.rows if r.notes]
        return "\n".join(lines) + "\n"


def replace_part(text: str, section: str, intro: str, heading: str, part: str) -> str:
    """``text`` with ``part`` (which starts with ``heading``) in ``section``, replacing the part
    of the same heading if there is one; the section is added, starting with ``intro``, if not."""
    found = re.search(rf"^{re.escape(section)}[ \t]*$", text, re.MULTILINE)
    if found is None:
        before, body, after = text, intro, ""
    else:
        following = re.search(r"^## ", text[found.end() :], re.MULTILINE)
        end = found.end() + following.start() if following else len(text)
        before, body, after = text[: found.start()], text[found.start() : end], text[end:]
    head, *parts = re.split(r"^(?=### )", body, flags=re.MULTILINE)
    same = [i for i, p in enumerate(parts) if p.splitlines()[0].rstrip() == heading]
    if same:
        parts[same[0]] = part
    else:
        parts.append(part)
    body = "\n\n".join(chunk.strip("\n") for chunk in (head, *parts))
    return "\n\n".join(c.strip("\n") for c in (before, body, after) if c.strip()) + "\n"


def record(report: Report, path: Path) -> Path:
    text = path.read_text() if path.exists() else HEADER
    path.write_text(
        replace_part(text, "## Ingest", INGEST_INTRO, report.heading, report.markdown())
    )
    return path
