"""A custom command as a worker: ``python -m distbench.worker.command -- ARGV...``.

The command runs as this process's child, with the worker's environment (torchrun's variables,
the server's address and the run token), in its CPU limit and network namespace. Around it this
wrapper does what a task's worker does for itself: it marks the rank started, passes on SIGTERM
so the command can stop cleanly, and writes the exit status and CPU time the backend reads, also
after a server restart.

A command is seen as started once its process is: whether and when it joins a process group is
its own affair (one that uses ``distbench.worker.init`` reports it the same way).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from distbench.worker.runtime import StatusFiles

NOT_FOUND = 127
NOT_EXECUTABLE = 126


def run(argv: list[str], status: StatusFiles) -> int:
    """Run ``argv``; its exit code, as a shell reports it (128 + N when killed by signal N)."""
    try:
        child = subprocess.Popen(argv)  # noqa: S603 -- the run's own command, by design
    except FileNotFoundError:
        print(f"distbench worker: command not found: {argv[0]!r}", file=sys.stderr)
        return NOT_FOUND
    except PermissionError:
        print(f"distbench worker: command not executable: {argv[0]!r}", file=sys.stderr)
        return NOT_EXECUTABLE

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    status.ready()
    code = child.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m distbench.worker.command -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    status_dir = os.environ.get("DISTBENCH_STATUS_DIR")
    status = StatusFiles(
        Path(status_dir) if status_dir else None, os.environ.get("DISTBENCH_POD_NAME", "")
    )
    code = 1
    try:
        code = run(args, status)
    finally:
        status.exited(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
