"""Public API schemas (``...Create`` in, ``...Public`` out). Storage shapes live in ``store``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from distbench.backends.local.limits.network import MIN_RATE_MBIT
from distbench.benchmarks.mlbench_images import CUSTOM_BACKEND
from distbench.metric_value import MAX_TEXT_CHARS, as_number
from distbench.run_state import RunState
from distbench.store.records import RunRecord
from distbench.timefmt import as_utc, format_dt, iso_or_unchanged

# Text without NUL characters: PostgreSQL text cannot hold them, so one would be a 500 there
# (and a 200 on SQLite). Declared as a pattern so the OpenAPI document says so too.
NO_NUL = r"^[^\x00]*$"


def _metric_value(raw: object) -> float | str:
    # bool is an int subclass; ``true`` as a metric value is a client bug, not 1.0.
    if isinstance(raw, bool):
        raise ValueError("must be a number or text, not a boolean")
    if isinstance(raw, int | float):
        return float(raw)
    if isinstance(raw, str):
        number = as_number(raw)
        if number is not None:
            return number
        # Anything else is text (MLBench's TaskResult sentence), within limits.
        if not raw.strip():
            raise ValueError('is empty: send a number (e.g. 0.7845, "0.7845", "nan") or text')
        if "\x00" in raw:
            raise ValueError("must not contain NUL characters (\\u0000)")
        if len(raw) > MAX_TEXT_CHARS:
            raise ValueError(f"is text of {len(raw)} characters: at most {MAX_TEXT_CHARS}")
        return raw
    raise ValueError(
        f'{raw!r} is not a number or text: send e.g. 0.7845, "0.7845", "nan", "inf" or a sentence'
    )


MetricValue = Annotated[
    float | str,
    BeforeValidator(_metric_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number"},
                {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": NO_NUL},
            ],
            "description": "A number, or a string: ASCII number text (nan, inf and -inf "
            "included) is stored as a number, any other text (MLBench's TaskResult sentence) as "
            "text, served back as posted and left out of downsampling and statistics.",
        }
    ),
]


def _lower_case(raw: object) -> object:
    return raw.strip().lower() if isinstance(raw, str) else raw


def not_a_boolean(raw: object) -> object:
    """A ``mode="before"`` check for number fields: ``bool`` is an ``int`` subclass and pydantic
    reads ``true`` as 1, so ``num_workers: true`` started a run and ``run_id: true`` stored to
    run 1."""
    if isinstance(raw, bool):
        raise ValueError("must be a number, not a boolean")
    return raw


# Run ids are PostgreSQL ``integer``s: a larger one in a query is a database error (a 500).
MAX_RUN_ID = 2**31 - 1

MetricName = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
PodName = Annotated[str, Field(min_length=1, max_length=253, pattern=NO_NUL)]
CommandArg = Annotated[str, Field(max_length=32_768, pattern=NO_NUL)]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_input"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """The one shape of every error response."""

    error: ErrorDetail
    message: str = Field(
        description="The same text as error.message, at the top level where MLBench's CLI reads it."
    )


class PodPublic(BaseModel):
    name: str
    labels: str = Field(
        description="The pod's labels written as the seed writes them: a Python dict literal.",
        examples=["{'app': 'distbench', 'component': 'worker', 'release': 'demo', 'run-id': '3'}"],
    )
    phase: Literal["Pending", "Running", "Succeeded", "Failed", "Unknown"]
    ip: str


class MetricCreate(BaseModel):
    """One metric point of a pod (``pod_name``) or a run (``run_id``). With both, as in the
    seed's own example, the point is the pod's."""

    # The document states the "one of them" rule too (null counts as absent, as in the API).
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "anyOf": [
                {"required": ["pod_name"], "properties": {"pod_name": {"type": "string"}}},
                {"required": ["run_id"], "properties": {"run_id": {"type": "integer"}}},
            ]
        },
    )

    pod_name: PodName | None = None
    run_id: int | None = Field(default=None, ge=1, le=MAX_RUN_ID)
    name: MetricName
    date: Annotated[dt.datetime, BeforeValidator(iso_or_unchanged)] | None = Field(
        default=None, description="ISO 8601; no offset means UTC; default: now."
    )
    value: MetricValue
    cumulative: bool = False
    metadata: str = Field(default="", max_length=10_000, pattern=NO_NUL)

    _run_id_not_a_boolean = field_validator("run_id", mode="before")(not_a_boolean)

    @field_validator("date")
    @classmethod
    def _date_in_utc_range(cls, value: dt.datetime | None) -> dt.datetime | None:
        # "0001-01-01T00:00:00+01:00" parses, but its UTC instant precedes year 1: converting it
        # later raised OverflowError, a 500 on bad input.
        if value is None:
            return None
        try:
            return as_utc(value)
        except OverflowError:
            raise ValueError(
                "is outside the dates UTC can hold (years 1 to 9999): send e.g. "
                "2018-08-03T09:21:38.594282Z"
            ) from None


class MetricPublic(BaseModel):
    """A stored point as POST /api/metrics answers it."""

    pod_name: str | None = None
    run_id: int | None = None
    name: str
    date: str
    value: str
    cumulative: bool
    metadata: str


class BatchStored(BaseModel):
    stored: int = Field(description="How many points were stored (all of those sent).")


class PodPoint(BaseModel):
    date: str = Field(examples=["2018-08-03T09:21:38.594282Z"])
    value: str = Field(examples=["0.188236813"])


class RunPoint(PodPoint):
    cumulative: bool
    metadata: str


class RunCreate(BaseModel):
    """A run to start. Fields other than these are ignored (MLBench's clients send more)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=100, pattern=NO_NUL)
    num_workers: int = Field(ge=1, le=256, description="Number of workers (processes or pods).")
    num_cpus: float = Field(default=1.0, gt=0, le=1024, description="Cores per worker.")
    max_bandwidth: float | None = Field(
        default=None,
        ge=MIN_RATE_MBIT,
        le=100_000,
        description="Egress cap per worker, Mbit/s; null: none. From 0.001 (1 kbit/s, the "
        "smallest rate the shaper sets) to 100000.",
    )
    benchmark: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=NO_NUL,
        description="The task (GET /api/benchmarks) [default: digits; none with ``command``].",
    )
    command: list[CommandArg] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Run this argv as each worker instead of a task, with the same environment "
        "and limits. Needs a server started with a token and --allow-commands (else 403).",
        examples=[["python", "train.py", "--lr", "0.1"]],
    )
    working_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        pattern=NO_NUL,
        description="Absolute path the command runs in [default: the run's own directory].",
    )
    gpu: bool = Field(default=False, description="Train on GPUs (one per worker) with nccl.")
    backend: Annotated[Literal["gloo", "nccl", "mpi"], BeforeValidator(_lower_case)] | None = Field(
        default=None,
        description="torch.distributed backend, any case (MLBench sends GLOO) [default: nccl "
        "with gpu, else gloo]. MLBench's backend=custom_backend takes the name from "
        "custom_backend.",
    )
    custom_backend: str | None = Field(
        default=None, max_length=100, description="With backend=custom_backend: the backend."
    )
    image_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        pattern=NO_NUL,
        description="MLBench's image or dashboard name: runs its distbench task (README, "
        "'MLBench images'); 400 for an image distbench has no task for. custom_image: run "
        "custom_image_command.",
        examples=["mlbench/pytorch-epsilon-logistic-regression-all-reduce:latest"],
    )
    custom_image_name: str | None = Field(
        default=None,
        max_length=300,
        pattern=NO_NUL,
        description="With image_name=custom_image: the image MLBench ran the command in "
        "(recorded; the command runs in the server's worker environment).",
    )
    custom_image_command: str | None = Field(
        default=None,
        min_length=1,
        max_length=32_768,
        pattern=NO_NUL,
        description="With image_name=custom_image: the command, split into words as a shell "
        "does (not run by a shell), then run as ``command``.",
    )
    gpu_enabled: bool | None = Field(default=None, description="MLBench's name for gpu.")
    light_target: bool = Field(
        default=False,
        description="With image_name: MLBench's light goal (ResNet-20 70 % instead of 80 %, "
        "logistic regression 80 % instead of 89 %).",
    )
    time_limit_s: float | None = Field(default=None, gt=0, description="Fail the run after this.")
    start_timeout_s: float | None = Field(
        default=None, gt=0, description="Fail the run if its workers have not all started by then."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Benchmark task options.")
    queue: bool | None = Field(
        default=None,
        description="Wait in the queue (state QUEUED) while another run is active or queued, "
        "and start in turn, instead of a 409 [default: the server's --queue-runs, else false].",
    )

    _numbers_not_booleans = field_validator(
        "num_workers", "num_cpus", "max_bandwidth", "time_limit_s", "start_timeout_s", mode="before"
    )(not_a_boolean)

    @model_validator(mode="before")
    @classmethod
    def _custom_backend(cls, data: Any) -> Any:
        # MLBench's client names a backend outside its list as backend=custom_backend plus
        # custom_backend=NAME; NAME then meets the same rules as any backend.
        if isinstance(data, dict):
            backend = data.get("backend")
            if isinstance(backend, str) and backend.strip().lower() == CUSTOM_BACKEND:
                name = data.get("custom_backend")
                if not name:
                    raise ValueError(
                        f"backend={backend} needs custom_backend=NAME (gloo, nccl or mpi)"
                    )
                return {**data, "backend": name}
        return data


# A run as the API serves it: ``RunRecord``'s fields in its order, dates as text
# (``run_public``). A comment, not a docstring, which /openapi.json would show.
class RunPublic(BaseModel):
    id: int
    name: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    # Checked as a RunState, documented inline as the names (an enum type would add a
    # component of its own to /openapi.json).
    state: Annotated[
        str,
        AfterValidator(RunState),
        WithJsonSchema({"enum": [s.value for s in RunState], "title": "State", "type": "string"}),
    ]
    job_id: str
    job_metadata: dict[str, Any]
    num_workers: int
    num_cpus: float
    max_bandwidth: float | None
    benchmark: str
    backend: str
    options: dict[str, Any]
    time_limit_s: float | None
    start_timeout_s: float | None
    gpu: bool
    command: list[str] | None = Field(description="The custom command; null for a task run.")
    working_dir: str | None


class RunLogs(BaseModel):
    run_id: int
    logs: dict[str, str] = Field(description="Each worker's output, by pod name.")


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    backend: str
    version: str


_RUN_DATES = ("created_at", "started_at", "finished_at")


def run_public(run: RunRecord) -> dict[str, Any]:
    """``RunPublic``'s body for a run: every field of the schema, taken from the record by
    name (a test holds the two field lists, the table's and the client's equal)."""
    public = {name: getattr(run, name) for name in RunPublic.model_fields}
    for name in _RUN_DATES:
        date = public[name]
        public[name] = None if date is None else format_dt(date)
    return public
