"""The OpenAPI document is true: it names every route the app serves, documents each error
response in the one error shape (never FastAPI's 422), and a property-based client that reads only
the document (schemathesis) never gets a 5xx from the live server."""

from __future__ import annotations

import collections
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.helpers import active_run, client, post_batch, wait_for_state
from tests.conftest import RunningServer

# Invalid input is refused with one of these; 413 is the answer to a batch over 10,000 points.
SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413"]
            }
        }
    }
)

OPERATIONS = [
    ("GET", "/api/pods/"),
    ("GET", "/api/metrics/"),
    ("GET", "/api/metrics/{pod_name_or_run_id}/"),
    ("POST", "/api/metrics"),
    ("POST", "/api/metrics/batch"),
    ("GET", "/api/runs/"),
    ("POST", "/api/runs/"),
    ("GET", "/api/runs/{run_id}/"),
    ("DELETE", "/api/runs/{run_id}/"),
    ("GET", "/api/runs/{run_id}/logs"),
    ("GET", "/api/health"),
    ("GET", "/metrics"),
]


def seed_resources(server: RunningServer) -> tuple[int, str]:
    """An ended run with pods and points (nan and inf among them), so generated requests that
    name it read real series; ended, so generated runs can start."""
    with client(server) as http:
        run = active_run(http, name="fuzzed", num_workers=2)
        post_batch(
            http,
            [
                {"run_id": run["id"], "name": "loss", "value": v, "date": f"2018-08-03T09:21:{s}Z"}
                for s, v in (("01", "0.5"), ("02", "nan"), ("03", "inf"), ("04", 0.25))
            ],
        )
        server.fake.finish(run["id"])
        wait_for_state(http, run["id"], "FINISHED")
    pod: str = run["job_metadata"]["pods"][0]
    return run["id"], pod


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error(
    server: RunningServer, method: str, path: str
) -> None:
    run_id, pod = seed_resources(server)
    operation = schemathesis.openapi.from_url(
        f"{server.url}/openapi.json", config=SCHEMATHESIS_CONFIG
    )[path][method]
    # Valid and invalid requests, plus valid ones aimed at the run and pod that exist (a random
    # id almost never names one, and the interesting reads are of real series).
    aimed: list[dict[str, Any]] = [{}]
    if "{run_id}" in path:
        aimed = [{"path_parameters": {"run_id": run_id}}]
    if "{pod_name_or_run_id}" in path:
        aimed = [
            {"path_parameters": {"pod_name_or_run_id": pod}},
            {"path_parameters": {"pod_name_or_run_id": str(run_id)}, "query": {"metric_type": "run"}},
        ]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.NEGATIVE),
        *(operation.as_strategy(GenerationMode.POSITIVE, **fixed) for fixed in aimed),
    )
    statuses: collections.Counter[int] = collections.Counter()

    @hypothesis.settings(
        max_examples=40,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            checks=[
                not_a_server_error,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
                negative_data_rejection,
            ]
        )
        statuses[response.status_code] += 1

    fuzz()
    print(method, path, sorted(statuses.items()))
