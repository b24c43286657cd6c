"""How a worker stops: after SIGTERM it is gone within ``TERM_GRACE_S``, whatever it was doing,
and its exit and usage files are written on the way out.

SIGTERM is how backends and torchrun stop a worker, and they follow it with SIGKILL after a
grace (distbench's orchestrator: 5 s), after which nothing more gets written. But a Python
signal handler runs only in the main thread, between bytecodes: a main thread blocked in a
collective whose peer will never answer (gloo waits for its timeout, minutes) never runs it, and
with no server left to send SIGKILL the worker would hang on. So the signal is watched from a
thread as well, through the interpreter's wakeup fd (written by the C-level handler whatever the
main thread is doing): if the process has not ended within the grace, that thread writes the
status files and ends it.

While the task runs, SIGTERM raises ``SystemExit(143)`` in the main thread, so ``finally``
blocks run. Once it has ended (``finishing``), SIGTERM no longer raises, since an exception
inside the metric flush or the status write would lose both: it cuts the flush short instead.
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from distbench.worker.status import StatusFiles

log = logging.getLogger(__name__)

# Below the orchestrator's 5 s between SIGTERM and SIGKILL, so the worker's own exit comes first.
TERM_GRACE_S = 3.0
# What is left of the grace for the last metrics, once stopped.
FLUSH_SHARE_OF_GRACE = 0.7
SIGTERM_EXIT = 128 + signal.SIGTERM


class StopGuard:
    """SIGTERM handling for one worker process; ``install`` from the main thread."""

    def __init__(self, status: StatusFiles | None = None, *, grace_s: float = TERM_GRACE_S):
        self.status = status
        self.grace_s = grace_s
        self._on_term: list[Callable[[float], object]] = []
        self._finishing = False
        self._raised = False
        self._code = SIGTERM_EXIT
        self._terminated = threading.Event()
        # Reentrant: the SIGTERM handler takes it in the main thread, which may hold it already.
        self._lock = threading.RLock()
        self._previous_handler: Any = signal.SIG_DFL
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._watchdog: threading.Thread | None = None

    def on_term(self, callback: Callable[[float], object]) -> None:
        """Call ``callback(seconds)`` on SIGTERM, from a thread: what is left of the grace for
        it (e.g. a reporter's ``cut_short``)."""
        self._on_term.append(callback)

    def install(self) -> None:
        self._previous_handler = signal.signal(signal.SIGTERM, self._handle)
        receiver, sender = socket.socketpair()
        sender.setblocking(False)
        previous = signal.set_wakeup_fd(sender.fileno(), warn_on_full_buffer=False)
        if previous != -1:
            # Someone else's (an event loop's): keep theirs, and rely on the handler alone.
            signal.set_wakeup_fd(previous)
            receiver.close()
            sender.close()
            return
        self._sockets = (receiver, sender)
        self._watchdog = threading.Thread(
            target=self._watch, args=(receiver,), name="sigterm-watchdog", daemon=True
        )
        self._watchdog.start()

    def uninstall(self) -> None:
        """Restore the previous SIGTERM handling (a grace already running still ends the
        process: SIGTERM was received)."""
        signal.signal(signal.SIGTERM, self._previous_handler)
        if self._sockets is not None:
            signal.set_wakeup_fd(-1)
            receiver, sender = self._sockets
            sender.close()  # the watchdog reads the end of the stream and returns
            if self._watchdog is not None and not self.terminated:
                self._watchdog.join(timeout=1.0)
            receiver.close()
            self._sockets = None

    def finishing(self, code: int = SIGTERM_EXIT) -> None:
        """The task has ended with ``code``: from now on SIGTERM only hurries the end along,
        and a worker that outlives the grace exits with ``code``."""
        with self._lock:
            self._finishing = True
            self._code = code

    @property
    def terminated(self) -> bool:
        return self._terminated.is_set()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        if self._sockets is None:
            # No watchdog thread saw it: start the grace from here.
            threading.Thread(target=self._stop, name="sigterm-grace", daemon=True).start()
        with self._lock:
            # Once: a second SIGTERM must not interrupt the ``finally`` blocks the first started.
            raise_now = not self._finishing and not self._raised
            self._raised = True
        if raise_now:
            raise SystemExit(SIGTERM_EXIT)

    def _watch(self, receiver: socket.socket) -> None:
        while True:
            try:
                data = receiver.recv(64)
            except OSError:
                return
            if not data:
                return  # uninstalled
            if signal.SIGTERM in data:
                self._stop()
                return

    def _stop(self) -> None:
        """SIGTERM was received: hurry the end along; if the process is still here after the
        grace, end it."""
        with self._lock:
            if self._terminated.is_set():
                return
            self._terminated.set()
        started = time.monotonic()
        log.warning("SIGTERM: stopping (this process ends within %.0f s)", self.grace_s)
        for callback in self._on_term:
            try:
                callback(self.grace_s * FLUSH_SHARE_OF_GRACE)
            except Exception:
                log.exception("while stopping")
        time.sleep(max(0.0, self.grace_s - (time.monotonic() - started)))
        self._exit_now()

    def _exit_now(self) -> None:
        with self._lock:
            code = self._code
        log.error(
            "still running %.0f s after SIGTERM (the main thread is stuck, e.g. in a collective "
            "whose peer is gone): exiting with code %d; the threads were at:",
            self.grace_s,
            code,
        )
        with contextlib.suppress(Exception):
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        try:
            if self.status is not None:
                self.status.exited(code)
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
