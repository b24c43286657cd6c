"""The worker API for a training script of one's own: join the process group from the
environment, time compute against communication, report metrics, declare the target reached.

    from distbench import worker

    with worker.init() as session:
        ...  # train with plain torch.distributed, timing blocks with session.compute() etc.
        means = session.end_epoch(epoch, samples=n, train_loss=loss, val_accuracy=accuracy)
        if means["val_accuracy"] >= target:
            session.target_reached()

The same script runs as a distbench run (metrics go to the server), under plain ``torchrun``
(reporting is a no-op) and as ``python script.py`` with no launcher (one process). The built-in
tasks get a ``Session`` too: their ``TaskContext`` is one.

Torch is imported inside the functions: the server imports this package without torch.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from distbench.ports import free_port
from distbench.worker.env import WorkerEnv, WorkerVar, read_env
from distbench.worker.process_group import join_process_group
from distbench.worker.reporter import BatchReporter, Reporter, make_reporter
from distbench.worker.shutdown import StopGuard
from distbench.worker.status import StatusFiles
from distbench.worker.timing import Timers

if TYPE_CHECKING:
    import torch

# Any of these set means a launcher started us; all unset means a plain ``python script.py``.
LAUNCHER_VARIABLES = (
    WorkerVar.RANK,
    WorkerVar.WORLD_SIZE,
    WorkerVar.MASTER_ADDR,
    WorkerVar.MASTER_PORT,
)


@dataclass
class Session:
    """A worker's place in the run: who it is, where its metrics go, its clocks.

    ``clock_started`` is the time-to-accuracy clock (``time.perf_counter``): MLPerf's rule, it
    starts before the first touch of data and never pauses.
    """

    env: WorkerEnv
    reporter: Reporter
    timers: Timers = field(default_factory=Timers)
    clock_started: float = field(default_factory=time.perf_counter)
    # Seconds on the clock when the current epoch started.
    _epoch_started: float = field(default=0.0, init=False, repr=False)
    _last_epoch: int | None = field(default=None, init=False, repr=False)
    _reached_at: float | None = field(default=None, init=False, repr=False)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_leader(self) -> bool:
        """Rank 0: the one writer of run-level series."""
        return self.env.rank == 0

    @property
    def device(self) -> torch.device:
        """Where tensors live: the rank's GPU when ``DISTBENCH_DEVICE=cuda``, else the CPU."""
        import torch

        if self.env.device == "cuda":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def elapsed_s(self) -> float:
        """Seconds on the time-to-accuracy clock."""
        return time.perf_counter() - self.clock_started

    def compute(self) -> AbstractContextManager[None]:
        """Time the block as compute (forward, backward, optimizer step)."""
        return self.timers.compute()

    def communication(self) -> AbstractContextManager[None]:
        """Time the block as communication (collectives: gradient all-reduce and the like)."""
        return self.timers.communication()

    def report(
        self, name: str, value: float, *, metadata: str = "", every_rank: bool = False
    ) -> None:
        """Report one point of the run's series ``name``; never blocks (points are posted in
        batches by a background thread). Only rank 0 reports unless ``every_rank``, so each
        series has one writer; with ``every_rank``, tell the ranks apart by name or metadata."""
        if every_rank or self.is_leader:
            self.reporter.report(name, value, metadata=metadata)

    def report_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """Report ``epoch`` and ``metrics`` as they are (rank 0's values), each point tagged
        ``{"epoch": N}``, as the built-in tasks do. Not collective; see ``end_epoch``."""
        meta = json.dumps({"epoch": epoch})
        self.report("epoch", epoch, metadata=meta)
        for name, value in metrics.items():
            self.report(name, value, metadata=meta)
        self._last_epoch = epoch

    def end_epoch(
        self, epoch: int, *, samples: float | None = None, **metrics: float
    ) -> dict[str, float]:
        """End an epoch; collective, so every rank calls it with the same metric names.

        Reports ``epoch``, each of ``metrics`` (e.g. ``train_loss``, ``val_accuracy``) and
        ``compute_s``/``communication_s`` (the timers since the previous ``end_epoch``) as the
        mean over ranks, plus ``samples_per_s`` when ``samples`` (this rank's training samples
        this epoch) is given: all ranks' samples over the epoch's wall time (since the previous
        ``end_epoch``, or ``init``). Then resets the
        timers. Returns what it reported, the same on every rank, so ranks decide alike (to
        stop, say)."""
        import torch
        import torch.distributed as dist

        reserved = sorted({"compute_s", "communication_s", "samples_per_s"} & set(metrics))
        if reserved:
            raise ValueError(
                f"end_epoch computes {', '.join(reserved)} itself (from the timers and samples=)"
            )
        epoch_s = self.elapsed_s() - self._epoch_started
        timers = {
            "compute_s": self.timers.compute_s,
            "communication_s": self.timers.communication_s,
        }
        local = {**{name: metrics[name] for name in sorted(metrics)}, **timers}  # one order
        extra = [float(samples or 0), epoch_s]
        sums = torch.tensor([*local.values(), *extra], dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        *totals, all_samples, epochs_s = sums.tolist()
        mean_of = dict(zip(local, (total / self.world_size for total in totals), strict=True))
        means = {name: mean_of[name] for name in [*metrics, *timers]}  # in the caller's order
        if samples is not None:
            # Over the ranks' mean epoch time, so that every rank returns the same value.
            means["samples_per_s"] = all_samples * self.world_size / epochs_s if epochs_s else 0.0
        self.report_epoch(epoch, means)
        self.timers.reset()
        self._epoch_started = self.elapsed_s()
        return means

    def target_reached(self, *, epoch: int | None = None) -> float:
        """Declare the target reached: report ``time_to_accuracy_s`` (the clock's seconds now,
        tagged with ``epoch``, by default the last one reported) and return it. Only the first
        call reports; later ones return the same seconds."""
        if self._reached_at is None:
            self._reached_at = self.elapsed_s()
            tagged = epoch if epoch is not None else self._last_epoch
            meta = json.dumps({"epoch": tagged}) if tagged is not None else ""
            self.report("time_to_accuracy_s", self._reached_at, metadata=meta)
        return self._reached_at


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment to read; with no launcher's variables at all, one process alone: rank 0
    of 1 with its store on a free local port."""
    env = os.environ if environ is None else environ
    if any(key in env for key in LAUNCHER_VARIABLES):
        return env
    standalone: dict[str, str] = {
        WorkerVar.RANK: "0",
        WorkerVar.WORLD_SIZE: "1",
        WorkerVar.LOCAL_RANK: "0",
        WorkerVar.MASTER_ADDR: "127.0.0.1",
        WorkerVar.MASTER_PORT: str(free_port()),
    }
    # (Should another process take the port first, the store says the address is in use.)
    return {**env, **standalone}


@contextmanager
def _stop_guard() -> Iterator[StopGuard | None]:
    """SIGTERM (how distbench and torchrun stop workers) becomes ``SystemExit``, so the session
    still flushes its metrics, and ends the process within a grace even when the main thread
    is stuck in a collective (see ``StopGuard``); only where the script has not handled
    SIGTERM itself. The exit file is the launcher's to write (the command wrapper's)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield None
        return
    guard = StopGuard()
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()


@contextmanager
def init(environ: Mapping[str, str] | None = None) -> Iterator[Session]:
    """Join the run and yield its ``Session``; leave it on exit.

    Reads the environment (``environ``, default ``os.environ``) with ``read_env`` (a
    ``WorkerEnvError`` names every problem); with none of ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT`` set, runs alone: rank 0 of 1 on a free port of 127.0.0.1.
    Then holds torch's threads to ``DISTBENCH_NUM_CPUS``, selects the rank's GPU when
    ``DISTBENCH_DEVICE=cuda``, joins the process group (``DISTBENCH_DIST_BACKEND``, default
    gloo), writes the ``<pod>.ready`` status file when ``DISTBENCH_STATUS_DIR`` is set and
    starts the reporter (a no-op without ``DISTBENCH_SERVER_URL``, e.g. under plain torchrun).
    The time-to-accuracy clock starts when the session is handed over.

    On exit: a barrier when the block ended normally (no rank leaves while others still use
    the group), the process group destroyed, waiting metrics sent (waiting for the server at
    most ``DISTBENCH_METRICS_FLUSH_S``, default 300 s; after SIGTERM, a few seconds).
    """
    env = read_env(_environ(environ))
    import torch.distributed as dist  # after the check: a bad environment fails fast

    with _stop_guard() as guard:
        reporter = make_reporter(env)
        if isinstance(reporter, BatchReporter):
            if guard is not None:
                guard.on_term(reporter.cut_short)
            if not logging.getLogger("httpx").level:
                # One log line per metric post would drown the script's own output.
                logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            join_process_group(env)
            try:
                StatusFiles(env.status_dir, env.pod_name).ready()
                yield Session(env=env, reporter=reporter)
                dist.barrier()
            finally:
                dist.destroy_process_group()
        finally:
            if guard is not None:
                guard.finishing()
            reporter.close()
