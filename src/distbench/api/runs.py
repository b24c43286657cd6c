"""Runs: list, inspect, start, abort, and read their workers' logs."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from distbench import benchmarks
from distbench.api import mlbench_form
from distbench.api.body import body_doc, is_form, read_payload, validate_model
from distbench.api.deps import ConnDep, OrchestratorDep, SettingsDep, WriterDep
from distbench.api.encode import JSONBody
from distbench.api.routing import errors, route
from distbench.api.schemas import RunCreate, RunLogs, RunPublic, run_public
from distbench.backends.base import default_dist_backend
from distbench.benchmarks import COMMAND_BENCHMARK, DEFAULT_BENCHMARK
from distbench.errors import Forbidden, InvalidInput
from distbench.settings import Settings
from distbench.store import runs as run_store
from distbench.store.records import NewRun

router = APIRouter(tags=["runs"])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The run's id.")]


@route(router, "GET", "/runs/", response_model=list[RunPublic], responses=errors(503))
def list_runs(conn: ConnDep) -> Response:
    """All runs (active, failed, finished), newest first."""
    return JSONBody([run_public(run) for run in run_store.list_runs(conn=conn)])


@route(router, "GET", "/runs/{run_id}/", response_model=RunPublic, responses=errors(400, 404, 503))
def get_run(conn: ConnDep, run_id: RunId) -> Response:
    """One run by id."""
    return JSONBody(run_public(run_store.get_run(conn=conn, run_id=run_id)))


@route(
    router,
    "POST",
    "/runs/",
    response_model=RunPublic,
    responses=errors(400, 401, 403, 409, 413, 503),
    openapi_extra=body_doc(
        {"$ref": "#/components/schemas/RunCreate"}, description="The run to start."
    ),
)
async def start_run(
    request: Request, caller: WriterDep, settings: SettingsDep, orchestrator: OrchestratorDep
) -> Response:
    """Start a run; 409 while another is INITIALIZED or STARTED, or runs are QUEUED. With
    ``queue: true`` (or a server started with --queue-runs) it waits QUEUED for its turn."""
    if not caller.is_admin:
        raise Forbidden("a run token may post metrics only; starting runs needs the server token")
    spec = validate_model(RunCreate, await read_payload(request, settings.max_body_bytes))
    from_mlbench = mlbench_form.is_mlbench_form(spec, from_form=is_form(request))
    spec, job_metadata = mlbench_form.translate(spec, installed_tasks=list(benchmarks.available()))
    if spec.command is not None:
        check_command_allowed(spec, settings)
    elif spec.working_dir is not None:
        raise InvalidInput(
            "working_dir applies to custom commands only: send command too, or leave it out",
            details={"errors": [{"field": "working_dir", "message": "needs command"}]},
        )
    benchmark = spec.benchmark or (COMMAND_BENCHMARK if spec.command else DEFAULT_BENCHMARK)
    options = dict(spec.options)
    if spec.command is None:
        # Here, where the server's settings are: a path option outside the data root is a 400
        # before anything is stored or started (benchmarks.paths says why).
        options = await run_in_threadpool(
            benchmarks.resolve_options, benchmark, options, data_root=settings.run_data_root
        )
    new = NewRun(
        name=spec.name,
        num_workers=spec.num_workers,
        num_cpus=spec.num_cpus,
        max_bandwidth=spec.max_bandwidth,
        benchmark=benchmark,
        command=spec.command,
        working_dir=spec.working_dir,
        backend=spec.backend or default_dist_backend(gpu=spec.gpu),
        options=options,
        time_limit_s=spec.time_limit_s,
        start_timeout_s=spec.start_timeout_s,
        gpu=spec.gpu,
        job_metadata=job_metadata,
    )
    if from_mlbench:
        new = await run_in_threadpool(mlbench_form.uncap_if_unenforceable, orchestrator.check, new)
    queue = settings.queue_runs if spec.queue is None else spec.queue
    run = await run_in_threadpool(lambda: orchestrator.create_run(new, queue=queue))
    return JSONBody(run_public(run))


def check_command_allowed(spec: RunCreate, settings: Settings) -> None:
    """Custom commands run arbitrary code as the server's user: only an operator who started
    the server with a token and ``--allow-commands`` lets callers (who hold the token) do it."""
    if not settings.allow_commands:
        raise Forbidden(
            "custom commands are disabled on this server: start it with --token TOKEN "
            "--allow-commands (DISTBENCH_ALLOW_COMMANDS=true) to let token holders run their "
            "own training scripts"
        )
    if spec.benchmark is not None:
        raise InvalidInput(
            "a run has either a benchmark or a command, not both",
            details={"errors": [{"field": "benchmark", "message": "not with command"}]},
        )
    if spec.working_dir is not None and not PurePosixPath(spec.working_dir).is_absolute():
        raise InvalidInput(
            f"working_dir={spec.working_dir!r} must be an absolute path",
            details={"errors": [{"field": "working_dir", "message": "not absolute"}]},
        )
    if not spec.command or not spec.command[0]:
        raise InvalidInput(
            'command must start with the program to run, e.g. ["python", "train.py"]',
            details={"errors": [{"field": "command", "message": "no program"}]},
        )


@route(
    router,
    "DELETE",
    "/runs/{run_id}/",
    response_model=RunPublic,
    responses=errors(400, 401, 403, 404, 503),
)
async def abort_run(run_id: RunId, caller: WriterDep, orchestrator: OrchestratorDep) -> Response:
    """Abort a run: its workers are stopped, its state becomes ABORTED, its data is kept.
    A QUEUED run becomes ABORTED without ever starting. An ended run is returned unchanged."""
    if not caller.is_admin:
        raise Forbidden("a run token may post metrics only; aborting needs the server token")
    run = await run_in_threadpool(orchestrator.abort, run_id)
    return JSONBody(run_public(run))


@route(
    router, "GET", "/runs/{run_id}/logs", response_model=RunLogs, responses=errors(400, 404, 503)
)
def run_logs(
    conn: ConnDep,
    orchestrator: OrchestratorDep,
    run_id: RunId,
    tail: Annotated[int | None, Query(ge=1, le=1_000_000, description="Last N lines only.")] = None,
) -> Response:
    """Each worker's stdout and stderr, by pod name."""
    run = run_store.get_run(conn=conn, run_id=run_id)
    logs = orchestrator.logs(run, tail_lines=tail)
    return JSONBody({"run_id": run.id, "logs": dict(logs)})
