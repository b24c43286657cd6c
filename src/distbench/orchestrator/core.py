"""Run lifecycle: [QUEUED ->] INITIALIZED -> STARTED -> FINISHED | FAILED | ABORTED.

A run posted with ``queue`` waits QUEUED (in the database, so a restart keeps the queue) until
no run is active; the monitor then starts the first in line. A queued run that is aborted
never starts.

Each transition is one transaction through ``store.runs.transition``, which only moves a run out
of the states it names; so when a failure, a finish and an abort race, the first one wins and
the others are no-ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from distbench import benchmarks
from distbench.backends.base import ClusterBackend, PodInfo, RunStatus
from distbench.errors import DistbenchError
from distbench.orchestrator.summary import summarize
from distbench.orchestrator.tokens import run_token
from distbench.run_state import ACTIVE_STATES, RunState
from distbench.store import pods as pod_store
from distbench.store import runs as run_store
from distbench.store.records import NewRun, RunRecord

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
LAUNCH_WAIT_S = 60.0


class Orchestrator:
    def __init__(
        self,
        *,
        engine: sa.Engine,
        backend: ClusterBackend,
        server_url: str,
        server_token: str | None,
        start_timeout_s: float,
        poll_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        before_cleanup: Callable[[list[str]], object] | None = None,
    ) -> None:
        self.engine = engine
        self._backend = backend
        self.server_url = server_url
        self.server_token = server_token
        self.start_timeout_s = start_timeout_s
        self.poll_interval_s = poll_interval_s
        self._clock = clock
        self._launches = ThreadPoolExecutor(max_workers=2, thread_name_prefix="launch")
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        # When this process first saw each active run; timeouts count from here, so runs adopted
        # after a restart are not failed for time spent while the server was down.
        self._seen_at: dict[int, float] = {}
        # Runs whose workers the backend is still creating: their status is not asked for
        # until ``launch`` returns (a half-created run would look like one whose workers died).
        self._launching: set[int] = set()
        self._launching_lock = threading.Lock()
        # Runs being aborted whose workers are still stopping: the next queued run waits for
        # them, so it does not share the machine with a run's last seconds.
        self._stopping: set[int] = set()
        # Called with a run's pod names just before its workers are cleaned up (the collector
        # takes its last sample there: a removed network namespace has no counters left).
        self._before_cleanup = before_cleanup

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.reconcile()
        self._monitor = threading.Thread(target=self._watch, name="orchestrator", daemon=True)
        self._monitor.start()

    def close(self) -> None:
        """A graceful stop (SIGTERM, Ctrl+C) leaves active runs running, each as it is: their
        workers live on without the server, and a server restarted on the same database and
        data directory adopts them. Launches under way are finished first, so what a restart
        finds is a run it can adopt, never a half-created one."""
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join(timeout=10)
        self._launches.shutdown(wait=True, cancel_futures=False)
        try:
            with self.engine.connect() as conn:
                active = run_store.active_runs(conn=conn)
                queued = run_store.queued_run_ids(conn=conn)
        except Exception:
            log.exception("could not list the active and queued runs at shutdown")
            active, queued = [], []
        for run in active:
            log.warning(
                "run %s (%s) keeps running; a restart adopts it (abort it to end it)",
                run.id,
                run.state,
            )
        if queued:
            log.warning("runs %s stay queued; a restart starts them in turn", queued)
        self._backend.close()

    # -- the backend, as the API sees it -----------------------------------------------------
    # The API asks the orchestrator, never its backend: what runs where stays behind one door.
    @property
    def backend_name(self) -> str:
        """Where workers run: ``local``, ``kubernetes`` (or a test's fake)."""
        return self._backend.name

    def list_pods(self) -> Sequence[PodInfo]:
        """The worker pods that exist now, with their phase and address."""
        return self._backend.list_pods()

    def logs(self, run: RunRecord, *, tail_lines: int | None = None) -> Mapping[str, str]:
        """Each of the run's workers' output, by pod name (the last ``tail_lines`` only)."""
        return self._backend.logs(run, tail_lines=tail_lines)

    def check(self, new: NewRun) -> None:
        """Refuse (``LimitUnsupported``, ``InvalidInput``) a run the backend cannot honour."""
        self._backend.check(new)

    # -- requests ----------------------------------------------------------------------------
    def create_run(self, new: NewRun, *, queue: bool = False) -> RunRecord:
        """Store the run (409 if one is active or runs are queued) and hand it to the backend
        in the background. With ``queue``, store it QUEUED behind the others instead; it starts
        here and now when nothing is active and nothing waits before it.

        A run the backend cannot honour is refused before anything is stored. The stored
        options are the task's complete options, defaults included, so a run can be repeated.
        A custom command's options are its own business: they reach it as DISTBENCH_OPTIONS."""
        if new.command is None:
            new = replace(new, options=benchmarks.resolve_options(new.benchmark, new.options))
        self._backend.check(new)
        with self.engine.begin() as conn:
            run = run_store.create_run(conn=conn, new=new, queued=queue)
        if not queue:
            self._begin_launch(run)
            return run
        self.start_next_queued()
        with self.engine.connect() as conn:
            return run_store.get_run(conn=conn, run_id=run.id)

    def start_next_queued(self) -> RunRecord | None:
        """Start the first queued run if no run is active (nor stopping). Returns it, or None."""
        with self._launching_lock:
            if self._stopping:
                return None
        with self.engine.begin() as conn:
            run = run_store.start_next_queued(conn=conn)
        if run is not None:
            log.info("run %s: its turn in the queue has come", run.id)
            self._begin_launch(run)
        return run

    def _begin_launch(self, run: RunRecord) -> None:
        # Its start timeout and time limit count from here: for a queued run, its real start.
        self._seen_at[run.id] = self._clock()
        with self._launching_lock:
            self._launching.add(run.id)
        self._launches.submit(self._launch, run)

    def abort(self, run_id: int) -> RunRecord:
        """Stop the run's workers and mark it ABORTED. A queued run is ABORTED without ever
        starting. An ended run is returned unchanged."""
        with self.engine.connect() as conn:
            run = run_store.get_run(conn=conn, run_id=run_id)
        if run.state == RunState.QUEUED:
            with self.engine.begin() as conn:
                dequeued = run_store.transition(
                    conn=conn,
                    run_id=run_id,
                    to_state=RunState.ABORTED,
                    from_states=(RunState.QUEUED,),
                    metadata_update={"reason": "aborted by request while queued (never started)"},
                )
                # Its turn came meanwhile: it is active now, and aborted as such below.
                run = dequeued or run_store.get_run(conn=conn, run_id=run_id)
            if dequeued is not None:
                log.info("run %s ABORTED while queued", run_id)
                return dequeued
        if not run.is_active:
            return run
        # Let a launch in progress finish first, or it would start workers after the stop.
        deadline = self._clock() + LAUNCH_WAIT_S
        while self._clock() < deadline:
            with self._launching_lock:
                if run_id not in self._launching:
                    break
            time.sleep(0.05)
        # ABORTED is committed before the workers are signalled: stopped workers exit non-zero,
        # and the monitor, seeing that first, would otherwise end the run FAILED.
        with self._launching_lock:
            self._stopping.add(run_id)
        try:
            ended = self._end(run_id, RunState.ABORTED, {"reason": "aborted by request"})
            self._stop_workers(run, grace_s=STOP_GRACE_S)
        finally:
            with self._launching_lock:
                self._stopping.discard(run_id)
        if ended is not None:
            return ended
        with self.engine.connect() as conn:
            return run_store.get_run(conn=conn, run_id=run_id)

    # -- internals ---------------------------------------------------------------------------
    def _launch(self, run: RunRecord) -> None:
        try:
            self._create_workers(run)
        finally:
            # Checked under the lock the monitor takes after failing a launching run (see
            # ``_check_deadlines``), so exactly one of the two sees the other and stops workers.
            with self._launching_lock:
                self._launching.discard(run.id)
                with self.engine.connect() as conn:
                    ended_meanwhile = not run_store.get_run(conn=conn, run_id=run.id).is_active
            if ended_meanwhile:
                # It ended (its start timeout) while its workers were being created: they were
                # not there to be stopped then, so they are stopped now.
                self._stop_workers(run, grace_s=0)

    def _create_workers(self, run: RunRecord) -> None:
        token = run_token(self.server_token, run.id) if self.server_token else None
        try:
            report = self._backend.launch(run, server_url=self.server_url, run_token=token)
        except Exception as exc:
            log.exception("run %s: workers could not be created", run.id)
            message = exc.message if isinstance(exc, DistbenchError) else repr(exc)
            self._stop_workers(run, grace_s=0)
            self._end(
                run.id, RunState.FAILED, {"error": f"workers could not be created: {message}"}
            )
            return
        with self.engine.begin() as conn:
            for pod in report.pods:
                pod_store.record_pod(
                    conn=conn,
                    name=pod.name,
                    run_id=run.id,
                    rank=pod.rank,
                    labels=pod.labels,
                    ip=pod.ip,
                )
            run_store.update_metadata(
                conn=conn,
                run_id=run.id,
                update={"pods": [pod.name for pod in report.pods], "limits": dict(report.applied)},
            )

    def _stop_workers(self, run: RunRecord, *, grace_s: float) -> None:
        """Take the last resource sample of the run's pods, then stop and clean up."""
        if self._before_cleanup is not None:
            try:
                with self.engine.connect() as conn:
                    pod_names = pod_store.pod_names_of_run(conn=conn, run_id=run.id)
                self._before_cleanup(pod_names)
            except Exception:
                log.exception("run %s: last resource sample failed", run.id)
        self._backend.stop(run, grace_s=grace_s)

    def _end(self, run_id: int, state: RunState, update: dict[str, Any]) -> RunRecord | None:
        with self.engine.begin() as conn:
            ended = run_store.transition(
                conn=conn,
                run_id=run_id,
                to_state=state,
                from_states=ACTIVE_STATES,
                metadata_update=update,
            )
            if ended is not None:
                # In the same transaction: nobody sees the run ended without its result.
                ended = self._record_result(conn, ended)
        self._seen_at.pop(run_id, None)
        if ended is not None:
            log.info("run %s %s: %s", run_id, state, update)
        return ended

    def _record_result(self, conn: sa.Connection, run: RunRecord) -> RunRecord:
        """Write the run's result summary into ``job_metadata["result"]`` (never fails the end
        of a run: a summary that cannot be computed is logged and left out; the savepoint keeps
        the transition's transaction usable)."""
        try:
            with conn.begin_nested():
                result = summarize(conn=conn, run=run)
                return run_store.update_metadata(
                    conn=conn, run_id=run.id, update={"result": result}
                )
        except Exception:
            log.exception("run %s: result summary failed", run.id)
            return run

    def reconcile(self) -> None:
        """Match runs left active by an earlier server process with what the backend has."""
        with self.engine.connect() as conn:
            left_active = run_store.active_runs(conn=conn)
        self._backend.reconcile(left_active)
        for run in left_active:
            status = self._backend.status(run)
            if status.state in ("running", "starting"):
                log.info("run %s: adopted after restart", run.id)
                self._seen_at[run.id] = self._clock()
                continue
            self._apply(run, status, restarted=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception:
                log.exception("orchestrator poll failed; retrying")

    def poll_once(self) -> None:
        with self.engine.connect() as conn:
            active = run_store.active_runs(conn=conn)
        for run in active:
            with self._launching_lock:
                launching = run.id in self._launching
            if launching:
                self._check_deadlines(
                    run, RunStatus(state="starting", reason="creating workers"), launching=True
                )
                continue
            self._apply(run, self._backend.status(run), restarted=False)
        # After the active run's end was handled above (its workers stopped), not before.
        self.start_next_queued()

    def _apply(self, run: RunRecord, status: RunStatus, *, restarted: bool) -> None:
        exit_codes = dict(status.exit_codes)
        if status.state == "running" and run.state == RunState.INITIALIZED:
            with self.engine.begin() as conn:
                run_store.transition(
                    conn=conn,
                    run_id=run.id,
                    to_state=RunState.STARTED,
                    from_states=(RunState.INITIALIZED,),
                )
        elif status.state == "succeeded":
            self._end(run.id, RunState.FINISHED, {"exit_codes": exit_codes})
            self._stop_workers(run, grace_s=STOP_GRACE_S)
        elif status.state == "failed":
            # Stop the survivors first: they are stuck in a collective with the dead rank.
            self._stop_workers(run, grace_s=STOP_GRACE_S)
            # Record how the survivors ended too (they were still running when ``status`` was
            # read), so every pod has its exit code in ``job_metadata``.
            stopped = self._backend.status(run).exit_codes
            exit_codes.update({pod: code for pod, code in stopped.items() if code is not None})
            update = {"error": status.reason, "exit_codes": exit_codes}
            if status.log_tails:
                update["worker_log_tails"] = dict(status.log_tails)
            self._end(run.id, RunState.FAILED, update)
        elif status.state == "gone":
            why = (
                "the server restarted and the run's workers were gone"
                + (f": {status.reason}" if status.reason else "")
                if restarted
                else (f"the run's workers disappeared ({status.reason})")
            )
            self._end(run.id, RunState.FAILED, {"error": why, "exit_codes": exit_codes})
            self._stop_workers(run, grace_s=0)
        else:
            self._check_deadlines(run, status)

    def _check_deadlines(
        self, run: RunRecord, status: RunStatus, *, launching: bool = False
    ) -> None:
        seen_at = self._seen_at.setdefault(run.id, self._clock())
        elapsed_s = self._clock() - seen_at
        start_timeout_s = run.start_timeout_s or self.start_timeout_s
        time_limit_s = run.time_limit_s
        reason = None
        if status.state == "starting" and elapsed_s > start_timeout_s:
            reason = f"workers did not all start within start_timeout_s={start_timeout_s:g}"
            if status.reason:
                reason += f": {status.reason}"
        elif time_limit_s is not None and elapsed_s > float(time_limit_s):
            reason = f"the run exceeded its time_limit_s={time_limit_s:g}"
        if reason is None:
            return
        if not launching:
            self._stop_workers(run, grace_s=STOP_GRACE_S)
            self._end(run.id, RunState.FAILED, {"error": reason})
            return
        # Its workers are still being created: stopping now would miss those created later.
        # The launch thread stops them when it finishes, unless it finished meanwhile.
        self._end(run.id, RunState.FAILED, {"error": reason})
        with self._launching_lock:
            launch_finished = run.id not in self._launching
        if launch_finished:
            self._stop_workers(run, grace_s=STOP_GRACE_S)
