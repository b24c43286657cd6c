"""How workers end when told to stop (SIGTERM), in real worker processes (``python -m
distbench.worker``, gloo on CPU on a free port) with no server to escalate to SIGKILL: within a
bounded time, whatever they were doing, and with their exit and usage files written, so the
backend (also a restarted one) records how each ended instead of taking it for killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from distbench.worker.command import CHILD_GRACE_S
from distbench.worker.shutdown import TERM_GRACE_S
from tests.backends.local_helpers import ENDLESS, wait_for
from tests.conftest import free_port

# Process start, torch import and the process group, on a loaded machine.
START_S = 120
# Beyond the grace: the status write, the log and the process's own exit.
SLACK_S = 3


class Workers:
    """Worker processes this test started (each in its own session), killed at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, pod_name: str, **env: str) -> subprocess.Popen[bytes]:
        environ = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")},
            "OMP_NUM_THREADS": "1",
            "PYTHONFAULTHANDLER": "1",
            "DISTBENCH_STATUS_DIR": str(self.directory),
            "DISTBENCH_POD_NAME": pod_name,
            **env,
        }
        with self.log(pod_name).open("wb") as log:
            process = subprocess.Popen(
                argv, env=environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(process)
        return process

    def task(
        self, rank: int, world: int, port: int, benchmark: str, options: dict[str, Any], **env: str
    ) -> subprocess.Popen[bytes]:
        return self.start(
            [sys.executable, "-m", "distbench.worker"],
            pod_name=f"rank-{rank}",
            RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            DISTBENCH_BENCHMARK=benchmark,
            DISTBENCH_OPTIONS=json.dumps(options),
            DISTBENCH_NUM_CPUS="1",
            **env,
        )

    def log(self, pod_name: str) -> Path:
        return self.directory / f"{pod_name}.log"

    def status(self, pod_name: str, suffix: str) -> str | None:
        path = self.directory / f"{pod_name}.{suffix}"
        return path.read_text() if path.exists() else None

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.close()


def stop_and_time(
    process: subprocess.Popen[bytes], log: Path, *, within_s: float
) -> tuple[int, float]:
    """SIGTERM ``process``; its exit code and the seconds it took, failing past ``within_s``
    with its log (and its threads' stacks: SIGABRT makes faulthandler write them there)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=within_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)
        process.wait(timeout=10)
        pytest.fail(f"still running {within_s} s after SIGTERM:\n{log.read_text()[-6000:]}")
    return code, time.monotonic() - started


def main_thread_blocked(pid: int) -> bool:
    """Whether the process's main thread sleeps and has used no CPU for half a second."""
    main = psutil.Process(pid)

    def cpu_s() -> float:
        times = main.cpu_times()
        return times.user + times.system

    before = cpu_s()
    time.sleep(0.5)
    return main.status() == psutil.STATUS_SLEEPING and cpu_s() - before < 0.02


def assert_usage_written(workers: Workers, pod_name: str) -> None:
    usage = workers.status(pod_name, "usage")
    assert usage is not None, f"no {pod_name}.usage"
    seconds = json.loads(usage)
    assert seconds["user_s"] > 0
    assert seconds["system_s"] >= 0


def test_sigterm_during_the_last_metric_flush_still_writes_exit_and_usage(
    workers: Workers,
) -> None:
    # A worker whose server is away when its task ends waits for it to deliver its metrics
    # (an adopted run's rank, say); the orchestrator then stops it.
    worker = workers.task(
        0,
        1,
        free_port(),
        "allreduce",
        {"sizes_bytes": [1024], "repetitions": 1},
        DISTBENCH_SERVER_URL=f"http://127.0.0.1:{free_port()}",
        DISTBENCH_RUN_ID="1",
    )
    log = workers.log("rank-0")
    wait_for(lambda: "rank 0 done" in log.read_text(), what="the task to end", timeout_s=START_S)
    wait_for(
        lambda: "metric points to deliver: waiting at most" in log.read_text(),
        what="the reporter's close to wait for the server",
    )
    assert worker.poll() is None, log.read_text()

    code, _ = stop_and_time(worker, log, within_s=TERM_GRACE_S + SLACK_S)

    text = log.read_text()
    # The task had succeeded: the status says so, and the stop cost only the last metrics.
    assert code == 0, text
    assert workers.status("rank-0", "exit") == "0\n", text
    assert_usage_written(workers, "rank-0")
    assert "metrics not all delivered: 1 reported, 0 delivered, 1 not delivered" in text


def test_a_worker_stuck_in_a_collective_ends_within_the_grace_after_sigterm(
    workers: Workers,
) -> None:
    port = free_port()
    ranks = [workers.task(rank, 2, port, "digits", ENDLESS) for rank in range(2)]
    wait_for(
        lambda: all(workers.status(f"rank-{rank}", "ready") for rank in range(2)),
        what="both ranks to join",
        timeout_s=START_S,
    )
    # The peer stops answering with its connection open (frozen; or killed while a forked
    # child holds its sockets, or cut off): gloo waits for its timeout, minutes. (A peer whose
    # connection closes is noticed at once: rank 0 fails on its own.)
    os.kill(ranks[1].pid, signal.SIGSTOP)
    # Rank 0 reaches its next collective (the first broadcast, or a step's all-reduce) and waits.
    wait_for(lambda: main_thread_blocked(ranks[0].pid), what="rank 0 to block", timeout_s=60)

    code, took_s = stop_and_time(ranks[0], workers.log("rank-0"), within_s=TERM_GRACE_S + SLACK_S)

    text = workers.log("rank-0").read_text()
    assert code == 128 + signal.SIGTERM, text
    assert took_s >= TERM_GRACE_S - 0.5  # it did wait for the main thread first
    assert workers.status("rank-0", "exit") == f"{128 + signal.SIGTERM}\n", text
    assert_usage_written(workers, "rank-0")
    assert "still running 3 s after SIGTERM" in text
    # Where it was stuck (a broadcast or an all-reduce), for whoever reads the log.
    assert "torch/distributed/distributed_c10d.py" in text


def test_a_command_that_ignores_sigterm_is_killed_within_the_grace(workers: Workers) -> None:
    ignores = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('started', flush=True); time.sleep(600)"
    )
    wrapper = workers.start(
        [sys.executable, "-m", "distbench.worker.command", "--", sys.executable, "-c", ignores],
        pod_name="command-0",
    )
    log = workers.log("command-0")
    wait_for(lambda: "started" in log.read_text(), what="the command to start", timeout_s=60)

    code, took_s = stop_and_time(wrapper, log, within_s=CHILD_GRACE_S + SLACK_S)

    assert code == 128 + signal.SIGKILL, log.read_text()
    assert took_s >= CHILD_GRACE_S - 0.5
    assert workers.status("command-0", "exit") == f"{128 + signal.SIGKILL}\n"
    assert_usage_written(workers, "command-0")
