"""``format=zip`` in MLBench's layout: flat ``result_<metric>.json``, ``<pod>_<metric>.json`` and
``official_result.txt`` at the root, holding what MLBench's download held; distbench's own files
under ``run-<id>/``."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator

import httpx
import pytest

from distbench.api.export import mlbench_date
from tests.api.helpers import client, post_batch, start_run, wait_for_pods
from tests.conftest import RunningServer

SENTENCE = "Run completed 12 epochs in 81.2s, reaching 80.31% validation accuracy (target 80%)."


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with client(server) as http:
        yield http


def at(second: int, micros: int = 0) -> str:
    return f"2018-08-03T09:21:{second:02d}.{micros:06d}Z"


def download(http: httpx.Client, run_id: int, **params: object) -> zipfile.ZipFile:
    response = http.get(
        f"/api/metrics/{run_id}/", params={"metric_type": "run", "format": "zip", **params}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


@pytest.fixture
def run_with_pods(http: httpx.Client) -> tuple[int, list[str]]:
    run_id: int = start_run(http, name="zip", num_workers=2)["id"]
    pods = wait_for_pods(http, run_id)
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "train_loss @ 0", "date": at(1, 594282), "value": 0.5},
            {"run_id": run_id, "name": "train_loss @ 0", "date": at(2), "value": 0.25,
             "metadata": "{rank: 0, epoch: 1}"},
            {"run_id": run_id, "name": "val_global_Prec@1 @ 0", "date": at(3), "value": 70,
             "cumulative": True},
            *({"pod_name": pod, "name": "net_out", "date": at(4), "value": 1.5} for pod in pods),
        ],
    )  # fmt: skip
    return run_id, pods


def test_the_zip_has_mlbench_flat_layout(
    http: httpx.Client, run_with_pods: tuple[int, list[str]]
) -> None:
    run_id, pods = run_with_pods

    with download(http, run_id) as archive:
        flat = {name for name in archive.namelist() if "/" not in name}
        # MLBench's files hold exactly what its dashboard wrote: date (milliseconds, Z),
        # the value as text and the cumulative flag, in date order.
        loss = json.loads(archive.read("result_train_loss @ 0.json"))
        prec = json.loads(archive.read("result_val_global_Prec@1 @ 0.json"))
        pod_file = json.loads(archive.read(f"{pods[0]}_net_out.json"))
        # distbench's own files stay beside them.
        assert json.loads(archive.read(f"run-{run_id}/run.json"))["id"] == run_id

    assert flat >= {
        "result_train_loss @ 0.json",
        "result_val_global_Prec@1 @ 0.json",
        "official_result.txt",
        *(f"{pod}_net_out.json" for pod in pods),
    }
    assert loss == [
        {"date": "2018-08-03T09:21:01.594Z", "value": "0.5", "cumulative": False},
        {"date": "2018-08-03T09:21:02Z", "value": "0.25", "cumulative": False},
    ]
    assert prec == [{"date": "2018-08-03T09:21:03Z", "value": "70.0", "cumulative": True}]
    assert pod_file == [{"date": "2018-08-03T09:21:04Z", "value": "1.5", "cumulative": False}]


def test_official_result_without_task_result_says_so(
    http: httpx.Client, run_with_pods: tuple[int, list[str]]
) -> None:
    run_id, _ = run_with_pods

    with download(http, run_id) as archive:
        text = archive.read("official_result.txt").decode()

    assert text.startswith(f"No TaskResult was posted for run {run_id}")


def test_official_result_holds_the_task_result_sentence(http: httpx.Client) -> None:
    # MLBench's workers post the goal's sentence as "TaskResult @ 0"; its download wrote that
    # value, and no result_TaskResult file.
    run_id: int = start_run(http, name="result", num_workers=1)["id"]
    post_batch(
        http,
        [
            {"run_id": run_id, "name": "train_loss @ 0", "date": at(1), "value": 0.5},
            {"run_id": run_id, "name": "TaskResult @ 0", "date": at(2), "value": SENTENCE},
        ],
    )

    # The result is the run's, whatever the download's filters.
    with download(http, run_id, metric_filter="train_loss @ 0") as archive:
        assert archive.read("official_result.txt").decode() == SENTENCE
        assert not [name for name in archive.namelist() if "TaskResult" in name]


def test_a_pod_zip_has_mlbench_result_files(
    http: httpx.Client, run_with_pods: tuple[int, list[str]]
) -> None:
    _, pods = run_with_pods

    response = http.get(f"/api/metrics/{pods[0]}/", params={"format": "zip"})

    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert json.loads(archive.read("result_net_out.json")) == [
            {"date": "2018-08-03T09:21:04Z", "value": "1.5", "cumulative": False}
        ]


def test_file_names_that_would_make_folders_or_clash_are_kept_apart(http: httpx.Client) -> None:
    run_id: int = start_run(http, name="names", num_workers=1)["id"]
    post_batch(
        http,
        [
            {"run_id": run_id, "name": name, "date": at(1), "value": value}
            for value, name in enumerate(["a/b", "a_b", "../up"])
        ],
    )

    with download(http, run_id) as archive:
        flat = {name for name in archive.namelist() if name.startswith("result_")}
        values = sorted(json.loads(archive.read(name))[0]["value"] for name in flat)

    assert flat == {"result_a_b.json", "result_a_b~2.json", "result_.._up.json"}
    assert values == ["0.0", "1.0", "2.0"]


@pytest.mark.parametrize(
    ("date_us", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_533_288_098_594_282, "2018-08-03T09:21:38.594Z"),
        (1_533_288_098_000_999, "2018-08-03T09:21:38.000Z"),
    ],
)
def test_mlbench_date_is_djangos_millisecond_form(date_us: int, text: str) -> None:
    assert mlbench_date(date_us) == text
