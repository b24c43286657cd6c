"""Operator endpoints: GET /api/health, and Prometheus text at GET /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import distbench
from tests.api.helpers import JSON_TYPE, client, start_run, wait_for
from tests.conftest import RunningServer

Labels = tuple[tuple[str, str], ...]
Samples = dict[str, dict[Labels, float]]


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def scrape(http: httpx.Client) -> Samples:
    """Every sample of GET /metrics: ``{sample_name: {sorted label pairs: value}}``."""
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def scrape_until(http: httpx.Client, settled: Callable[[Samples], bool]) -> Samples:
    """Requests are counted just after their answer is sent, so a scrape can trail the requests
    before it by a moment: scrape until they show."""

    def samples_when_settled() -> Samples | None:
        samples = scrape(http)
        return samples if settled(samples) else None

    return wait_for(samples_when_settled, what="the request counters to settle")


def request_count(samples: Samples, method: str, route: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return samples.get("distbench_http_requests_total", {}).get(labels, 0.0)


def test_health(http: httpx.Client) -> None:
    for path in ("/api/health", "/api/health/"):
        response = http.get(path)

        assert response.status_code == 200
        assert response.headers["content-type"] == JSON_TYPE
        assert response.json() == {
            "status": "ok",
            "database": "ok",
            "backend": "fake",
            "version": distbench.__version__,
        }


def test_request_counts_by_route_template(http: httpx.Client) -> None:
    for run_id in (11, 12, 13):
        assert http.get(f"/api/runs/{run_id}/").status_code == 404
    http.get("/api/runs/")
    http.get("/api/metrics")
    scrape(http)

    expected = {("/api/runs/{run_id}/", "404"): 3, ("/api/runs/", "200"): 1}
    expected[("/api/metrics", "200")] = 1

    samples = scrape_until(
        http,
        lambda s: all(request_count(s, "GET", *key) >= n for key, n in expected.items()),
    )

    assert {key: request_count(samples, "GET", *key) for key in expected} == expected
    # Full templates: the API's slashless /api/metrics is not Prometheus' own /metrics.
    assert request_count(samples, "GET", "/metrics", "200") >= 1
    requests = samples["distbench_http_requests_total"]
    # One series per endpoint, never one per id.
    assert not any("/11/" in value for labels in requests for _, value in labels)


def test_latency_histogram(http: httpx.Client) -> None:
    http.get("/api/runs/")
    http.get("/api/runs/")

    samples = scrape_until(http, lambda s: request_count(s, "GET", "/api/runs/", "200") == 2)

    route = (("method", "GET"), ("route", "/api/runs/"))
    assert samples["distbench_http_request_duration_seconds_count"][route] == 2
    assert samples["distbench_http_request_duration_seconds_sum"][route] > 0
    buckets = {}
    for labels, value in samples["distbench_http_request_duration_seconds_bucket"].items():
        named = dict(labels)
        if (named["method"], named["route"]) == ("GET", "/api/runs/"):
            buckets[named["le"]] = value
    assert buckets["+Inf"] == 2
    counts = [buckets[le] for le in sorted(buckets, key=float)]
    assert counts == sorted(counts)


def test_points_ingested_grows_after_posts(http: httpx.Client) -> None:
    run_id = start_run(http)["id"]

    def ingested_run_points() -> float:
        counter = scrape(http).get("distbench_metric_points_ingested_total", {})
        return counter.get((("kind", "run"),), 0.0)

    before = ingested_run_points()
    single = http.post("/api/metrics", json={"run_id": run_id, "name": "a", "value": 1})
    assert single.status_code == 201
    batch = [{"run_id": run_id, "name": "a", "value": v} for v in range(4)]
    assert http.post("/api/metrics/batch", json=batch).status_code == 201
    refused = [{"run_id": run_id + 1, "name": "a", "value": 1}]
    assert http.post("/api/metrics/batch", json=refused).status_code == 404

    assert ingested_run_points() == before + 5
