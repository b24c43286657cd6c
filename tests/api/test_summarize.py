"""``summarize=N`` on GET /api/metrics/{id}/: MLBench's group means, validated, and how it
combines with since, last_n, max_points and the exports."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from tests.api.helpers import (
    assert_error,
    client,
    post_batch,
    run_series,
    start_run,
    wait_for_pods,
)
from tests.conftest import RunningServer


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def at(second: int) -> str:
    return f"2018-08-03T09:21:{second:02d}.000000Z"


@pytest.fixture
def ten_points(http: httpx.Client) -> int:
    """A run whose ``loss`` is 0, 1, ..., 9 at seconds 0 to 9."""
    run_id: int = start_run(http, name="summarize")["id"]
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "loss", "date": at(s), "value": s, "metadata": f"m{s}"}
            for s in range(10)
        ],
    )
    return run_id


def dates_and_values(points: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(p["date"], p["value"]) for p in points]


def test_summarize_averages_groups_of_consecutive_points(
    http: httpx.Client, ten_points: int
) -> None:
    # MLBench: groups of ceil(10 / 3) = 4 points, each the mean at its first point's date; the
    # last, shorter group is averaged over its own two points (MLBench dropped it).
    points = run_series(http, ten_points, summarize="3")["loss"]

    assert dates_and_values(points) == [(at(0), "1.5"), (at(4), "5.5"), (at(8), "8.5")]
    assert [p["metadata"] for p in points] == ["m0", "m4", "m8"]
    assert all(p["cumulative"] is False for p in points)


@pytest.mark.parametrize("groups", [10, 11, 1000])
def test_a_series_no_longer_than_summarize_comes_back_whole(
    http: httpx.Client, ten_points: int, groups: int
) -> None:
    assert run_series(http, ten_points, summarize=groups) == run_series(http, ten_points)


def test_summarize_one_is_the_mean_of_the_whole_series(http: httpx.Client, ten_points: int) -> None:
    assert dates_and_values(run_series(http, ten_points, summarize=1)["loss"]) == [(at(0), "4.5")]


def test_since_filters_before_summarize_and_last_n_cuts_after(
    http: httpx.Client, ten_points: int
) -> None:
    # since leaves 2..9 (8 points): groups of 3 -> [2,3,4] [5,6,7] [8,9].
    after = run_series(http, ten_points, summarize=3, since=at(1))["loss"]
    assert dates_and_values(after) == [(at(2), "3.0"), (at(5), "6.0"), (at(8), "8.5")]
    # last_n takes the newest of the summarized points, as MLBench did.
    newest = run_series(http, ten_points, summarize=3, last_n=1)["loss"]
    assert dates_and_values(newest) == [(at(8), "8.5")]


def test_max_points_applies_to_the_summarized_series(http: httpx.Client, ten_points: int) -> None:
    points = run_series(http, ten_points, summarize=5, max_points=2)["loss"]

    # summarize=5 gives the means 0.5, 2.5, 4.5, 6.5, 8.5; max_points=2 keeps the lowest and
    # the highest of them.
    assert dates_and_values(points) == [(at(0), "0.5"), (at(8), "8.5")]


def test_summarize_applies_to_pod_series(http: httpx.Client) -> None:
    run_id = start_run(http, name="pods", num_workers=1)["id"]
    pod = wait_for_pods(http, run_id)[0]
    post_batch(
        http,
        [{"pod_name": pod, "name": "load", "date": at(s), "value": s} for s in range(4)],
    )

    response = http.get(f"/api/metrics/{pod}/", params={"summarize": 2, "metric_filter": "load"})

    assert response.status_code == 200, response.text
    assert response.json() == {
        "load": [{"date": at(0), "value": "0.5"}, {"date": at(2), "value": "2.5"}]
    }
    every_pod = http.get("/api/metrics/", params={"summarize": 2, "metric_filter": "load"})
    assert every_pod.json()[pod] == response.json()


def test_summarize_applies_to_exports(http: httpx.Client, ten_points: int) -> None:
    response = http.get(
        f"/api/metrics/{ten_points}/",
        params={"metric_type": "run", "summarize": 3, "format": "json"},
    )
    assert response.status_code == 200, response.text
    assert [p["value"] for p in json.loads(response.content)["loss"]] == ["1.5", "5.5", "8.5"]

    archive = http.get(
        f"/api/metrics/{ten_points}/",
        params={"metric_type": "run", "summarize": 3, "format": "zip"},
    )
    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        loss = json.loads(files.read("result_loss.json"))
    assert [p["value"] for p in loss] == ["1.5", "5.5", "8.5"]


@pytest.mark.parametrize("bad", ["0", "-2", "abc", "1.5", "", "99999999999"])
def test_summarize_must_be_a_positive_integer(
    http: httpx.Client, ten_points: int, bad: str
) -> None:
    response = http.get(
        f"/api/metrics/{ten_points}/", params={"metric_type": "run", "summarize": bad}
    )

    assert_error(response, 400, "invalid_input", mentions=("summarize",))
