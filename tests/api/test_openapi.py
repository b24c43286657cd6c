"""The OpenAPI document is true: it names every route the app serves, documents each operation's
errors in the one error shape (never FastAPI's 422), its references resolve, and a property-based
client that reads only the document (schemathesis) never gets a 5xx from the live server, and
gets answers the document describes."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.routing import APIRoute
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import BaseRoute

from distbench.dashboard import PAGE_PATHS, STATIC_PATH
from tests.api.helpers import JSON_TYPE, active_run, client, post_batch, wait_for_state
from tests.api.test_error_shape import serving
from tests.conftest import RunningServer

# Every operation, and the error statuses it documents: 400 where it takes input, 404 where it
# looks something up, 401/403 where it writes (a server with a token), 409 when a run is active,
# 413 where it reads a body, 503 when the database is down.
OPERATIONS: dict[tuple[str, str], set[int]] = {
    # 503: the database is read-only, failing or unreachable (with Retry-After), or for pods the
    # backend cannot list them. 401/403 on a read: --protect-reads and no (or the wrong) token.
    ("GET", "/api/pods/"): {401, 403, 503},
    ("GET", "/api/metrics/"): {400, 401, 403, 503},
    ("GET", "/api/metrics/{pod_name_or_run_id}/"): {400, 401, 403, 404, 503},
    ("POST", "/api/metrics"): {400, 401, 403, 404, 413, 503},
    ("POST", "/api/metrics/batch"): {400, 401, 403, 404, 413, 503},
    ("GET", "/api/runs/"): {401, 403, 503},
    ("POST", "/api/runs/"): {400, 401, 403, 409, 413, 503},
    ("GET", "/api/runs/{run_id}/"): {400, 401, 403, 404, 503},
    ("DELETE", "/api/runs/{run_id}/"): {400, 401, 403, 404, 503},
    ("GET", "/api/runs/{run_id}/logs"): {400, 401, 403, 404, 503},
    ("GET", "/api/benchmarks"): {401, 403},
    ("GET", "/api/health"): {503},
    ("GET", "/metrics"): {401, 403},
}
# FastAPI's own pages, served beside the API and not part of it.
FASTAPI_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
ERROR_BODY = {JSON_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

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


@dataclass(frozen=True)
class Seeded:
    """The module's server, with an ended run that has pods and points (nan and inf among them),
    so generated requests that name them read real series; ended, so a generated run can start."""

    server: RunningServer
    run_id: int
    pod: str
    document: dict[str, Any]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    with serving(request.param, tmp_path_factory.mktemp(request.param), request) as server:
        with client(server) as http:
            run = active_run(http, name="fuzzed", num_workers=2)
            post_batch(
                http,
                [
                    {"run_id": run["id"], "name": "loss", "value": v, "date": f"2018-08-03T09:{m}Z"}
                    for m, v in (("21:01", "0.5"), ("21:02", "nan"), ("22:03", "inf"), ("23:04", 1))
                ],
            )
            server.fake.finish(run["id"])
            wait_for_state(http, run["id"], "FINISHED")
            document = http.get("/openapi.json").json()
        yield Seeded(server, run["id"], run["job_metadata"]["pods"][0], document)


def other_slash_form(path: str) -> str:
    return path[:-1] if path.endswith("/") else path + "/"


# -- the document ------------------------------------------------------------------------------


def served_routes(app: FastAPI) -> Iterator[tuple[BaseRoute, str]]:
    """Each route the app serves, with its full path. Recent FastAPI keeps included routers lazy
    in ``app.routes`` and flattens them with ``iter_route_contexts``; older FastAPI had no such
    function, and flat routes."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        for route in app.routes:
            yield route, getattr(route, "path", "")
        return
    for context in iter_route_contexts(app.routes):
        yield context.original_route, context.path or ""


def test_every_route_served_is_documented_and_every_operation_served(seeded: Seeded) -> None:
    app = seeded.server.app
    assert isinstance(app, FastAPI)
    served: set[tuple[str, str]] = set()
    for route, path in served_routes(app):
        if path in PAGE_PATHS or path == STATIC_PATH:
            continue  # the dashboard's pages and files: not API, left out of the document
        if isinstance(route, APIRoute):
            served |= {(method, path) for method in route.methods}
        else:
            assert path in FASTAPI_PAGES, route
    documented = {
        (method.upper(), path) for path, item in seeded.document["paths"].items() for method in item
    }

    assert documented == set(OPERATIONS)
    # Each operation answers on both slash forms; the document names one of them.
    assert served == documented | {(m, other_slash_form(p)) for m, p in documented}


@pytest.mark.parametrize(
    ("method", "path"), list(OPERATIONS), ids=[" ".join(o) for o in OPERATIONS]
)
def test_operation_documents_its_errors_in_the_error_shape(
    seeded: Seeded, method: str, path: str
) -> None:
    responses = seeded.document["paths"][path][method.lower()]["responses"]
    errors = {int(status) for status in responses if int(status) >= 400}

    assert "422" not in responses
    assert errors == OPERATIONS[method, path]
    for status in errors:
        assert responses[str(status)]["content"] == ERROR_BODY, status


def test_error_body_schema_is_the_one_shape_and_fastapi_validation_schemas_are_gone(
    seeded: Seeded,
) -> None:
    schemas = seeded.document["components"]["schemas"]

    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert schemas["ErrorBody"]["required"] == ["error", "message"]
    assert schemas["ErrorBody"]["properties"]["message"]["type"] == "string"
    assert schemas["ErrorBody"]["properties"]["error"] == {
        "$ref": "#/components/schemas/ErrorDetail"
    }
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "details"}
    assert {"code", "message"} <= set(schemas["ErrorDetail"]["required"])


def test_every_reference_resolves(seeded: Seeded) -> None:
    def references(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    yield value
                else:
                    yield from references(value)
        elif isinstance(node, list):
            for item in node:
                yield from references(item)

    schemas = seeded.document["components"]["schemas"]
    refs = set(references(seeded.document))

    assert refs, "the document refers to no schema at all"
    assert {
        ref for ref in refs if ref.removeprefix("#/components/schemas/") not in schemas
    } == set()
    # The bodies the routes parse themselves are described, not just named.
    assert {"MetricCreate", "RunCreate"} <= set(schemas)


def test_document_is_served_as_json(seeded: Seeded) -> None:
    response = httpx.get(f"{seeded.server.url}/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == seeded.document


# -- schemathesis against the live server ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"), list(OPERATIONS), ids=[" ".join(o) for o in OPERATIONS]
)
def test_generated_requests_never_get_a_server_error(
    seeded: Seeded, method: str, path: str
) -> None:
    operation = schemathesis.openapi.from_url(
        f"{seeded.server.url}/openapi.json", config=SCHEMATHESIS_CONFIG
    )[path][method]
    # Invalid requests, and valid ones; valid ones also aimed at the run and pod that exist (a
    # random id almost never names one, and the interesting reads are of real series).
    aimed: list[dict[str, Any]] = [{}]
    if "{run_id}" in path:
        aimed.append({"path_parameters": {"run_id": seeded.run_id}})
    if "{pod_name_or_run_id}" in path:
        aimed += [
            {"path_parameters": {"pod_name_or_run_id": seeded.pod}},
            {
                "path_parameters": {"pod_name_or_run_id": str(seeded.run_id)},
                "query": {"metric_type": "run"},
            },
        ]
    if path == "/api/metrics":
        aimed.append(
            {
                "body": {"run_id": seeded.run_id, "name": "aimed", "value": "0.5"},
                "media_type": "application/json",
            }
        )
    if path == "/api/metrics/batch":
        aimed.append({"body": [{"pod_name": seeded.pod, "name": "aimed", "value": 0.5}]})
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.NEGATIVE),
        *(operation.as_strategy(GenerationMode.POSITIVE, **fixed) for fixed in aimed),
    )
    statuses: collections.Counter[int] = collections.Counter()

    # Derandomized: CI sees the same requests on every run. Bounded: the module stays quick.
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

    assert all(status < 500 for status in statuses), statuses
    # Both kinds of request got through: an operation that takes input refused some of it.
    assert any(status < 300 for status in statuses), statuses
    if 400 in OPERATIONS[method, path]:
        assert any(400 <= status < 500 for status in statuses), statuses
