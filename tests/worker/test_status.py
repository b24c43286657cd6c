"""The status files a worker leaves for its backend: what the worker writes, the backend reads
back, through the one module that names them."""

from __future__ import annotations

import re
from pathlib import Path

from distbench.worker.env import WorkerVar
from distbench.worker.status import (
    StatusFile,
    StatusFiles,
    exit_recorded_at,
    is_ready,
    read_exit_code,
    read_usage,
    record_exit,
    status_path,
)
from tests.source_literals import spellings_outside


def test_what_the_worker_writes_the_backend_reads(tmp_path: Path) -> None:
    files = StatusFiles(tmp_path, "pod-1")
    assert not is_ready(tmp_path, "pod-1")
    assert read_exit_code(tmp_path, "pod-1") is None
    assert exit_recorded_at(tmp_path, "pod-1") is None
    assert read_usage(tmp_path, "pod-1") is None

    files.ready()
    assert is_ready(tmp_path, "pod-1")
    assert not is_ready(tmp_path, "pod-2")
    files.exited(3)
    files.exited(0)  # the first end wins (the main thread and the SIGTERM watchdog race)
    assert read_exit_code(tmp_path, "pod-1") == 3
    assert exit_recorded_at(tmp_path, "pod-1") is not None
    usage = read_usage(tmp_path, "pod-1")
    assert usage is not None
    assert usage.user_s >= 0
    assert usage.system_s >= 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "pod-1.exit",
        "pod-1.ready",
        "pod-1.usage",
    ]


def test_a_parent_records_an_exit_only_when_the_worker_wrote_none(tmp_path: Path) -> None:
    exit_file = status_path(tmp_path, "pod-1", StatusFile.EXIT)
    record_exit(exit_file, -9)
    assert read_exit_code(tmp_path, "pod-1") == -9
    StatusFiles(tmp_path, "pod-2").exited(0)
    record_exit(status_path(tmp_path, "pod-2", StatusFile.EXIT), -9)
    assert read_exit_code(tmp_path, "pod-2") == 0


def test_an_unreadable_file_reads_as_none(tmp_path: Path) -> None:
    status_path(tmp_path, "pod-1", StatusFile.EXIT).write_text("not a number\n")
    status_path(tmp_path, "pod-1", StatusFile.USAGE).write_text('{"user_s": 1.0}\n')
    assert read_exit_code(tmp_path, "pod-1") is None
    assert read_usage(tmp_path, "pod-1") is None


def test_without_a_directory_nothing_is_written(tmp_path: Path) -> None:
    files = StatusFiles(None, "pod-1")
    files.ready()
    files.exited(0)
    assert files.exit_code == 0
    assert list(tmp_path.iterdir()) == []


def test_the_command_wrapper_finds_its_files_from_the_environment(tmp_path: Path) -> None:
    files = StatusFiles.from_environ(
        {WorkerVar.STATUS_DIR: str(tmp_path), WorkerVar.POD_NAME: "pod-4"}
    )
    assert (files.directory, files.pod_name) == (tmp_path, "pod-4")
    assert StatusFiles.from_environ({}).directory is None


def test_the_status_file_names_are_spelled_only_in_their_owner_module() -> None:
    """A backend that builds ``f"{pod}.exit"`` itself reads a file the worker may one day stop
    writing; it must go through ``worker/status.py``."""
    name = re.compile(r"\.(ready|exit|usage|metrics\.jsonl)([\"']|$)")
    assert (
        spellings_outside(lambda literal: bool(name.search(literal)), owners={"worker/status.py"})
        == []
    )
