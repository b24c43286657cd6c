"""The OpenAPI document is true: it names every route the app serves, documents each error
response in the one error shape (never FastAPI's 422), and a property-based client that reads only
the document (schemathesis) never gets a 5xx from the live server."""

from __future__ import annotations

import collections

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

from tests.api.helpers import active_run, client, post_batch
from tests.conftest import RunningServer

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


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_never_get_a_server_error(
    server: RunningServer, method: str, path: str
) -> None:
    with client(server) as http:
        run = active_run(http, name="fuzzed", num_workers=2)
        post_batch(
            http,
            [
                {"run_id": run["id"], "name": "loss", "value": v, "date": f"2018-08-03T09:21:{s}Z"}
                for s, v in (("01", "0.5"), ("02", "nan"), ("03", "inf"), ("04", 0.25))
            ],
        )
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operation = schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
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
