"""A typed, synchronous client for the distbench REST API (docs/api.md), built on httpx.

Answers come back as frozen dataclasses with aware UTC datetimes and float values; error answers
come back as the same ``distbench.errors`` exceptions the server raised, so code on both sides of
the wire catches the same classes::

    with Client("http://127.0.0.1:8000", token="s3cret") as client:
        run = client.start_run(name="demo", num_workers=2)
        run = client.wait_for_run(run.id, timeout_s=600)
        accuracy = client.run_metrics(run.id, metric_filter="accuracy")

The calls live in ``http_client``, the records in ``records`` and the client's own errors in
``errors``; import them from here.
"""

from distbench.client.errors import ApiError, RunWaitTimeout, ServerUnreachable
from distbench.client.http_client import Client, ExportFormat
from distbench.client.records import (
    ACTIVE_STATES,
    END_STATES,
    RUN_STATES,
    Benchmark,
    Health,
    NewPoint,
    Pod,
    PodSeries,
    Point,
    Run,
    RunPoint,
    RunSeries,
    StoredPoint,
    numbers,
    parse_date,
)
from distbench.run_state import RunState

__all__ = [
    "ACTIVE_STATES",
    "END_STATES",
    "RUN_STATES",
    "ApiError",
    "Benchmark",
    "Client",
    "ExportFormat",
    "Health",
    "NewPoint",
    "Pod",
    "PodSeries",
    "Point",
    "Run",
    "RunPoint",
    "RunSeries",
    "RunState",
    "RunWaitTimeout",
    "ServerUnreachable",
    "StoredPoint",
    "numbers",
    "parse_date",
]
