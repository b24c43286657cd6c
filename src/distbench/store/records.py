"""Plain records the store hands out; the API turns them into its public schemas."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from distbench.run_state import RunState


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: int
    name: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    state: RunState
    job_id: str
    job_metadata: dict[str, Any]
    num_workers: int
    num_cpus: float
    max_bandwidth: float | None
    benchmark: str
    backend: str
    options: dict[str, Any]
    time_limit_s: float | None = None
    start_timeout_s: float | None = None
    gpu: bool = False
    # A custom command run (``POST /api/runs/`` with ``command``): each worker runs this argv,
    # in ``working_dir``, instead of a benchmark task.
    command: list[str] | None = None
    working_dir: str | None = None

    @property
    def is_active(self) -> bool:
        return self.state.is_active


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a caller asks for; the store adds id, dates, state and job id."""

    name: str
    num_workers: int
    num_cpus: float
    max_bandwidth: float | None
    benchmark: str
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    time_limit_s: float | None = None
    start_timeout_s: float | None = None
    gpu: bool = False
    command: list[str] | None = None
    working_dir: str | None = None
    # What the run starts with in ``job_metadata`` (where an MLBench request came from, warnings).
    job_metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One point to store. Exactly one of ``run_id`` and ``pod_name`` is set."""

    name: str
    date_us: int
    # A number, or text (MLBench's TaskResult sentence; see distbench.metric_value).
    value: float | str
    run_id: int | None = None
    pod_name: str | None = None
    cumulative: bool = False
    metadata: str = ""
