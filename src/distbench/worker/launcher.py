"""A warm launcher that forks workers: ``python -m distbench.worker.launcher --socket PATH``.

Importing torch costs a new process seconds of CPU, and all workers of a run pay it at once on
the same cores. The launcher imports torch and the tasks once, ahead of time, and forks each
worker from that state, then puts the child where the backend says: its own session, log file,
cgroup, CPUs and network namespace. Workers outlive the launcher (and the server).

It stays single-threaded (OpenBLAS and OpenMP pools are pinned to one thread before the imports),
so forking it is safe. Protocol: one JSON request per connection, one JSON line back.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from distbench.worker.status import record_exit

CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
NETNS_DIR = Path("/run/netns")


def _preload() -> None:
    """Everything a worker imports, so forked children start warm."""
    import httpx  # noqa: F401
    import sklearn.datasets  # noqa: F401
    import torch
    import torch._dynamo
    import torch.distributed  # noqa: F401

    from distbench import benchmarks
    from distbench.worker import runtime  # noqa: F401

    for spec in benchmarks.available().values():
        try:
            spec.load()
        except Exception:
            # A plugin whose training module fails to import must not take the launcher (and
            # every other task's fast start) with it; its own runs fail with the traceback.
            print(f"launcher: preloading task {spec.name} ({spec.entry}) failed:", file=sys.stderr)
            traceback.print_exc()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _enter_netns(name: str) -> None:
    with open(NETNS_DIR / name, "rb") as handle:
        if _libc().setns(handle.fileno(), CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into network namespace {name}: {os.strerror(errno)}")


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become the worker. Never returns."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        log = os.open(request["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if request.get("cgroup_procs"):
            Path(request["cgroup_procs"]).write_text(f"{os.getpid()}\n")
        if request.get("cpus"):
            os.sched_setaffinity(0, request["cpus"])
        if request.get("netns"):
            _enter_netns(request["netns"])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from distbench.worker import runtime

        code = runtime.main()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


class Launcher:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        # pid -> the exit file to write if the worker dies without writing its own
        self.exit_files: dict[int, str] = {}

    def reap(self, *_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            exit_file = self.exit_files.pop(pid, None)
            if exit_file:
                with contextlib.suppress(OSError):
                    record_exit(Path(exit_file), os.waitstatus_to_exitcode(status))

    def serve(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        listener.listen(16)
        signal.signal(signal.SIGCHLD, self.reap)
        print("ready", flush=True)
        while True:
            try:
                connection, _ = listener.accept()
            except InterruptedError:
                continue
            with connection:
                self._handle(connection, listener)

    def _handle(self, connection: socket.socket, listener: socket.socket) -> None:
        data = b""
        while not data.endswith(b"\n"):
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        request = json.loads(data)
        # SIGCHLD waits until the child is registered, or a child dying at once goes unrecorded.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                listener.close()
                connection.close()
                _child(request)
            self.exit_files[pid] = request.get("exit_file", "")
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        connection.sendall(json.dumps({"pid": pid}).encode() + b"\n")


def main() -> None:
    parser = argparse.ArgumentParser(description="Fork distbench workers from a warm process.")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args()
    # Die with the server that started us; the workers we forked live on in their sessions.
    _libc().prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    _preload()
    Launcher(args.socket).serve()


if __name__ == "__main__":
    main()
