"""The files a worker leaves for its backend in the run's directory: ``<pod>.ready`` once the
process group is joined, ``<pod>.usage`` (its CPU seconds) and ``<pod>.exit`` (its exit code)
when it ends. They outlive the server, so a restarted server still learns how each worker ended
and what it cost; a worker that leaves no exit file is taken to have been killed (SIGKILL)."""

from __future__ import annotations

import json
import resource
import threading
from pathlib import Path


class StatusFiles:
    def __init__(self, directory: Path | None, pod_name: str) -> None:
        self.directory = directory
        self.pod_name = pod_name
        # The main thread and the SIGTERM watchdog may both get to ``exited``: the first wins.
        self._lock = threading.Lock()
        self.exit_code: int | None = None

    def _write(self, suffix: str, text: str) -> None:
        if self.directory is None:
            return
        path = self.directory / f"{self.pod_name}.{suffix}"
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(text)
        temporary.replace(path)

    def ready(self) -> None:
        self._write("ready", "1\n")

    def exited(self, code: int) -> None:
        """Write the usage and exit files, once: later calls change nothing."""
        with self._lock:
            if self.exit_code is not None:
                return
            self.exit_code = code
            # The process's own CPU account first: once it is gone nobody else can read it.
            own, children = (
                resource.getrusage(resource.RUSAGE_SELF),
                resource.getrusage(resource.RUSAGE_CHILDREN),
            )
            usage = {
                "user_s": own.ru_utime + children.ru_utime,
                "system_s": own.ru_stime + children.ru_stime,
            }
            self._write("usage", json.dumps(usage) + "\n")
            self._write("exit", f"{code}\n")
