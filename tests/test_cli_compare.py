"""``distbench sweep`` and ``distbench compare``: the scaling table's arithmetic on hand-made runs,
then the real command in a subprocess against a fake-backend server and, as root, real workers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from distbench.cli.compare import (
    Row,
    parse_worker_counts,
    scaling_rows,
    scaling_table,
    table_title,
    write_plot,
)
from distbench.client import Client, NewPoint, Run, RunPoint, RunSeries
from tests.backends.local_helpers import LocalServers, requires_root
from tests.backends.local_helpers import local_servers as local_servers
from tests.conftest import RunningServer
from tests.test_cli import assert_one_line_refusal, clean_env, command, distbench

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_run(
    run_id: int, workers: int, *, state: str = "FINISHED", duration_s: float = 100.0
) -> Run:
    return Run(
        id=run_id,
        name=f"digits x{workers}",
        created_at=T0,
        state=state,
        job_id=f"job-{run_id}",
        job_metadata={},
        started_at=T0,
        finished_at=T0 + dt.timedelta(seconds=duration_s),
        num_workers=workers,
        benchmark="digits",
    )


def points(*values: float, step_s: float = 10.0) -> list[RunPoint]:
    return [
        RunPoint(T0 + dt.timedelta(seconds=step_s * (i + 1)), value, False, "")
        for i, value in enumerate(values)
    ]


def series(tta_s: float | None = None, **named: list[float]) -> RunSeries:
    made = {name: points(*values) for name, values in named.items()}
    if tta_s is not None:
        made["time_to_accuracy_s"] = points(tta_s)
    return made


def by_workers(rows: list[Row]) -> dict[int, Row]:
    return {row.workers: row for row in rows}


# -- the table's arithmetic ------------------------------------------------------------------------
def test_speedup_and_efficiency_against_the_one_worker_run() -> None:
    runs = [make_run(1, 1), make_run(2, 2), make_run(3, 4)]
    metrics = {1: series(100.0), 2: series(60.0), 3: series(40.0)}

    rows = by_workers(scaling_rows(runs, metrics))

    assert rows[1].speedup == pytest.approx(1.0)
    assert rows[1].efficiency == pytest.approx(1.0)
    assert rows[2].speedup == pytest.approx(100 / 60)
    assert rows[2].efficiency == pytest.approx(100 / 60 / 2)
    assert rows[4].speedup == pytest.approx(2.5)
    assert rows[4].efficiency == pytest.approx(0.625)
    assert table_title(list(rows.values())) == "scaling: speedup against the 1-worker run"


def test_worker_counts_sort_as_numbers_not_text() -> None:
    runs = [make_run(7, 16), make_run(8, 2), make_run(9, 1), make_run(10, 4)]
    metrics = {run.id: series(100.0 / (run.num_workers or 1)) for run in runs}

    rows = scaling_rows(runs, metrics)

    assert [row.workers for row in rows] == [1, 2, 4, 16]
    assert [row.run_id for row in rows] == [9, 8, 10, 7]
    assert rows[-1].speedup == pytest.approx(16.0)


def test_a_run_that_missed_the_target_has_no_speedup() -> None:
    runs = [make_run(1, 1), make_run(2, 2, state="FAILED"), make_run(3, 4)]
    metrics = {1: series(90.0), 2: series(None, val_accuracy=[0.3, 0.4]), 3: series(30.0)}

    rows = by_workers(scaling_rows(runs, metrics))

    assert rows[2].time_to_accuracy_s is None
    assert rows[2].speedup is None
    assert rows[2].efficiency is None
    assert rows[4].speedup == pytest.approx(3.0)
    rendered = render(scaling_table(list(rows.values())))
    assert "not reached" in rendered
    assert "FAILED" in rendered


def test_a_baseline_that_missed_the_target_gives_no_speedups() -> None:
    runs = [make_run(1, 1), make_run(2, 2)]
    metrics = {1: series(None), 2: series(50.0)}

    rows = scaling_rows(runs, metrics)

    assert [row.speedup for row in rows] == [None, None]
    assert rows[1].time_to_accuracy_s == 50.0


def test_without_a_one_worker_run_the_smallest_count_is_the_baseline() -> None:
    runs = [make_run(1, 8), make_run(2, 2), make_run(3, 4)]
    metrics = {1: series(40.0), 2: series(80.0), 3: series(50.0)}

    rows = scaling_rows(runs, metrics)

    assert [row.workers for row in rows] == [2, 4, 8]
    assert [row.speedup for row in rows] == pytest.approx([1.0, 1.6, 2.0])
    # Against 2 workers the ideal speedup of n workers is n / 2.
    assert [row.efficiency for row in rows] == pytest.approx([1.0, 0.8, 0.5])
    title = table_title(rows)
    assert "no 1-worker run" in title
    assert "smallest count (2 workers)" in title


def test_repeated_baseline_runs_average() -> None:
    runs = [make_run(1, 1), make_run(2, 1), make_run(3, 2)]
    metrics = {1: series(90.0), 2: series(110.0), 3: series(50.0)}

    rows = scaling_rows(runs, metrics)

    assert [row.run_id for row in rows] == [1, 2, 3]
    assert rows[2].speedup == pytest.approx(2.0)


def test_time_split_throughput_and_total() -> None:
    runs = [make_run(1, 2, duration_s=42.5)]
    metrics = {
        1: series(
            30.0,
            compute_s=[3.0, 2.0, 1.0],
            communication_s=[1.0, 0.5, 0.5],
            samples_per_s=[500.0, 700.0, 650.0],
        )
    }

    (row,) = scaling_rows(runs, metrics)

    assert row.compute_s == pytest.approx(6.0)
    assert row.communication_s == pytest.approx(2.0)
    assert row.communication_share == pytest.approx(0.25)
    assert row.samples_per_s == 650.0
    assert row.total_s == pytest.approx(42.5)


def test_text_values_count_in_no_column() -> None:
    # MLBench's TaskResult is a sentence: a text point among the numbers is skipped.
    made = series(30.0, compute_s=[3.0, 2.0], samples_per_s=[500.0], TaskResult=[])
    made["compute_s"].append(RunPoint(T0, "n/a", False, ""))
    made["samples_per_s"].append(RunPoint(T0, "fast", False, ""))
    made["time_to_accuracy_s"].append(RunPoint(T0, "reached", False, ""))

    (row,) = scaling_rows([make_run(1, 1)], {1: made})

    assert row.compute_s == pytest.approx(5.0)
    assert row.samples_per_s == 500.0
    assert row.time_to_accuracy_s == 30.0


def test_a_run_without_metrics_or_an_end_shows_dashes() -> None:
    run = make_run(1, 1, state="STARTED")
    unfinished = dataclasses.replace(run, finished_at=None)

    (row,) = scaling_rows([unfinished], {})

    assert row.total_s is None
    assert row.communication_share is None
    assert row.samples_per_s is None


def render(table: Table) -> str:
    console = Console(width=200, file=io.StringIO())
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "counts"), [("1,2,4", [1, 2, 4]), ("16, 2,1", [16, 2, 1]), ("3", [3])]
)
def test_parse_worker_counts(text: str, counts: list[int]) -> None:
    assert parse_worker_counts(text) == counts


@pytest.mark.parametrize("text", ["0,abc", "", "1,,2", "-1", "2.5", "two"])
def test_parse_worker_counts_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not a worker count"):
        parse_worker_counts(text)


def test_plot_from_hand_made_runs_is_a_png(tmp_path: Path) -> None:
    runs = [make_run(1, 1), make_run(2, 2), make_run(3, 4)]
    metrics = {
        run.id: series(
            None if run.id == 3 else 60.0 / run.id,
            val_accuracy=[0.5, 0.7, 0.8],
            compute_s=[2.0, 2.0],
            communication_s=[0.5 * run.id],
        )
        for run in runs
    }
    path = tmp_path / "scaling.png"

    write_plot(path, scaling_rows(runs, metrics), runs, metrics, metric="val_accuracy")

    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000


# -- the command, against a server with the fake backend -------------------------------------------
def test_sweep_refuses_bad_worker_counts(tmp_path: Path) -> None:
    result = distbench(tmp_path, "sweep", "--workers", "0,abc", "--url", "http://127.0.0.1:9")

    assert result.returncode == 2
    assert_one_line_refusal(result, "--workers", "'0'", "worker count")


def test_compare_of_an_unknown_run_is_one_line(tmp_path: Path, server: RunningServer) -> None:
    result = distbench(tmp_path, "compare", "999", "--url", server.url)

    assert result.returncode == 1
    assert_one_line_refusal(result, "999")


def test_compare_refuses_a_plot_that_is_not_png(tmp_path: Path) -> None:
    result = distbench(tmp_path, "compare", "1", "--plot", str(tmp_path / "out.jpg"))

    assert result.returncode == 2
    assert_one_line_refusal(result, "PNG")


class FakeTrainer:
    """Plays the workers for the fake backend: each run that starts gets a few epochs of metrics,
    reaching the target in ``60 / workers`` seconds, then finishes."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.done: set[int] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> FakeTrainer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def _loop(self) -> None:
        with Client(self.server.url) as client:
            while not self.stop.wait(0.05):
                for run in client.runs():
                    if run.state == "STARTED" and run.id not in self.done:
                        self.train(client, run)

    def train(self, client: Client, run: Run) -> None:
        workers = run.num_workers or 1
        start = run.started_at or T0
        epochs = [
            ("epoch", 1.0),
            ("val_accuracy", 0.6),
            ("samples_per_s", 300.0 * workers),
            ("compute_s", 8.0 / workers),
            ("communication_s", 0.5 * workers),
        ]
        batch = [
            NewPoint(name, value, run_id=run.id, date=start + dt.timedelta(seconds=epoch))
            for epoch in (1, 2)
            for name, value in epochs
        ]
        batch.append(NewPoint("time_to_accuracy_s", 60.0 / workers, run_id=run.id, date=start))
        client.post_metrics(batch)
        self.done.add(run.id)
        self.server.fake.finish(run.id)


@pytest.fixture
def fake_trainer(server: RunningServer) -> Iterator[FakeTrainer]:
    with FakeTrainer(server) as trainer:
        yield trainer


def table_line(stdout: str, workers: int) -> str:
    """The table row whose first cell is ``workers``."""
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│|]", line) if cell.strip()]
        if cells and cells[0] == str(workers):
            return line
    raise AssertionError(f"no row for {workers} workers in:\n{stdout}")


def test_sweep_then_compare_on_the_fake_backend(
    tmp_path: Path, server: RunningServer, fake_trainer: FakeTrainer
) -> None:
    sweep = distbench(
        tmp_path, "sweep", "--workers", "4,1,2", "-o", "max_epochs=2", "--url", server.url
    )

    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    assert "speedup against the 1-worker run" in sweep.stdout
    assert "2.00x" in table_line(sweep.stdout, 2)
    assert "4.00x" in table_line(sweep.stdout, 4)
    assert "100%" in table_line(sweep.stdout, 4)  # efficiency: 4x on 4 workers
    with Client(server.url) as client:
        ids = sorted(run.id for run in client.runs())
    assert len(ids) == 3

    plot = tmp_path / "out.png"
    compared = distbench(
        tmp_path, "compare", *map(str, ids), "--plot", str(plot), "--url", server.url
    )

    assert compared.returncode == 0, compared.stderr
    rows = [table_line(compared.stdout, n) for n in (1, 2, 4)]
    assert [compared.stdout.index(row) for row in rows] == sorted(
        compared.stdout.index(row) for row in rows
    )
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    assert plot.stat().st_size > 10_000


def test_ctrl_c_aborts_the_current_run_and_exits_130(tmp_path: Path, server: RunningServer) -> None:
    env = {**clean_env(tmp_path), "PYTHONUNBUFFERED": "1"}
    args = command("sweep", "--workers", "1,2", "--url", server.url)
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as sweep:
        assert sweep.stdout is not None
        first = sweep.stdout.readline()  # "run N started: ..." once start_run has answered
        assert "started" in first, first + sweep.communicate(timeout=30)[1]
        sweep.send_signal(signal.SIGINT)
        stdout, stderr = sweep.communicate(timeout=30)

    assert sweep.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    with Client(server.url) as client:
        runs = client.runs()
    # The sweep stopped at its first run: nothing of the 2-worker run was started.
    assert [(run.num_workers, run.state) for run in runs] == [(1, "ABORTED")]
    assert f"run {runs[0].id} ABORTED" in stdout


# -- the real thing: real workers training digits --------------------------------------------------
@requires_root
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sweep_and_compare_with_real_workers(tmp_path: Path, local_servers: LocalServers) -> None:
    server = local_servers.start()
    args = ("sweep", "--benchmark", "digits", "--workers", "1,2")
    args += ("-o", "max_epochs=3", "-o", "target_accuracy=0.5", "--url", server.url)

    sweep = distbench(tmp_path, *args, timeout_s=300)

    assert sweep.returncode == 0, sweep.stdout + sweep.stderr
    one, two = table_line(sweep.stdout, 1), table_line(sweep.stdout, 2)
    assert "FINISHED" in one
    assert "FINISHED" in two
    assert "1.00x" in one  # the baseline against itself
    assert re.search(r"\d+\.\d\dx", two), two
    assert "not reached" not in sweep.stdout

    with server.client() as http:
        ids = sorted(run["id"] for run in http.get("/api/runs/").json())
    plot = tmp_path / "out.png"
    compared = distbench(
        tmp_path, "compare", *map(str, ids), "--plot", str(plot), "--url", server.url
    )

    assert compared.returncode == 0, compared.stderr
    assert table_line(compared.stdout, 1)
    assert table_line(compared.stdout, 2)
    data = plot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 10_000
