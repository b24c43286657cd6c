"""A custom command as a worker: ``python -m distbench.worker.command -- ARGV...``.

The command runs as this process's child, with the worker's environment (torchrun's variables,
the server's address and the run token), in its CPU limit and network namespace. Around it this
wrapper does what a task's worker does for itself: it marks the rank started, passes on SIGTERM
so the command can stop cleanly (killing it if it has not within ``CHILD_GRACE_S``), and writes
the exit status and CPU time the backend reads, also after a server restart.

A command is seen as started once its process is: whether and when it joins a process group is
its own affair (one that uses ``distbench.worker.init`` reports it the same way).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from types import FrameType

import psutil

from distbench.worker.shutdown import TERM_GRACE_S
from distbench.worker.status import StatusFiles

NOT_FOUND = 127
NOT_EXECUTABLE = 126
# Time for a command to stop after SIGTERM: a script using ``distbench.worker.init`` ends within
# TERM_GRACE_S, and the orchestrator's SIGKILL comes 5 s after its SIGTERM.
CHILD_GRACE_S = TERM_GRACE_S + 1.0


def run(argv: list[str], status: StatusFiles, *, grace_s: float = CHILD_GRACE_S) -> int:
    """Run ``argv``; its exit code, as a shell reports it (128 + N when killed by signal N)."""
    stop_requested: list[float] = []  # when SIGTERM came: the command's grace runs from there
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGTERM and not stop_requested:
            stop_requested.append(time.monotonic())
        if child is not None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    try:
        child = subprocess.Popen(argv)  # noqa: S603 -- the run's own command, by design
    except FileNotFoundError:
        print(f"distbench worker: command not found: {argv[0]!r}", file=sys.stderr)
        return NOT_FOUND
    except PermissionError:
        print(f"distbench worker: command not executable: {argv[0]!r}", file=sys.stderr)
        return NOT_EXECUTABLE
    if stop_requested:  # SIGTERM came while it was being started
        child.terminate()
    status.ready()
    code = _wait(child, stop_requested, grace_s)
    return 128 - code if code < 0 else code


def _wait(child: subprocess.Popen[bytes], stop_requested: list[float], grace_s: float) -> int:
    """The command's exit status; once stopped, within ``grace_s``: a command that ignores
    SIGTERM (or is stuck in a collective whose peer is gone) is killed, with its children,
    before the backend's SIGKILL would leave no exit file."""
    killed = False
    while True:
        try:
            return child.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if not killed and stop_requested and time.monotonic() - stop_requested[0] > grace_s:
                killed = True
                print(
                    f"distbench worker: the command still runs {grace_s:g} s after SIGTERM: "
                    "killing it",
                    file=sys.stderr,
                    flush=True,
                )
                _kill_tree(child.pid)


def _kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        for descendant in [*process.children(recursive=True), process]:
            with contextlib.suppress(psutil.Error):
                descendant.kill()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m distbench.worker.command -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    status = StatusFiles.from_environ()
    code = 1
    try:
        code = run(args, status)
    finally:
        status.exited(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
