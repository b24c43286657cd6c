"""Every method of MLBench's ``ApiClient`` (mlbench-core 3.0.0, unmodified) against a real
``distbench serve``, with and without a token (sent as Basic auth from ``user:TOKEN@host:port``)."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from typing import Any

import pytest

from tests.backends.local_helpers import wait_for
from tests.mlbench.conftest import TOKEN, Dashboard, MLBench

LOGREG = "PyTorch Linear Logistic Regression"
LOSS = "mlbench_client_loss @ 0"
CPU = "container_cpu_usage_seconds_total"
SENTENCE = "Run completed 20 epochs in 81.2s, reaching 85.31% validation accuracy (target 89%)."
PHASES = {"Pending", "Running", "Succeeded", "Failed", "Unknown"}

# post_metric dates points with datetime.utcnow(), deprecated from Python 3.12: MLBench's call.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")


def result(future: Any, status: int) -> Any:
    """The ``requests`` response behind the client's future, checked for ``status``."""
    return result_of(future.result(timeout=60), status)


def result_of(response: Any, status: int) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response


def values(series: dict[str, list[dict[str, str]]], name: str) -> list[str]:
    return [point["value"] for point in series[name]]


def test_every_api_client_method(mlbench: MLBench, dashboard: Dashboard) -> None:
    client = dashboard.client(mlbench)
    assert result(client.get_runs(), 200).json() == []

    # create_run sends image_name, backend=GLOO (upper case), max_bandwidth=1000, gpu_enabled
    # and light_target as form fields.
    created = client.create_run("client", 1, num_cpus=1.0, image=LOGREG, backend="GLOO")
    run = result(created, 200).json()
    run_id = run["id"]
    assert run["name"] == "client"
    assert run["state"] in {"INITIALIZED", "STARTED"}
    assert run["benchmark"] == "logreg"
    assert [r["id"] for r in result(client.get_runs(), 200).json()] == [run_id]
    assert result(client.get_run(run_id), 200).json()["id"] == run_id

    def run_pods() -> list[dict[str, str]]:
        pods = result(client.get_worker_pods(), 200).json()
        return [pod for pod in pods if f"'run-id': '{run_id}'" in pod["labels"]]

    pod = wait_for(run_pods, what="the run's pod", timeout_s=60)[0]
    assert pod["phase"] in PHASES
    assert pod["ip"]

    # post_metric as MLBench's workers post: form fields, date=str(datetime.utcnow()) (a
    # space, no zone), value=str(value), cumulative=False as text.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)  # naive UTC, as MLBench
    start = now - dt.timedelta(minutes=10)
    for second in range(6):
        posted = client.post_metric(
            run_id, LOSS, 0.5 + second, date=start + dt.timedelta(seconds=second)
        )
        result(posted, 201)

    every = result(client.get_run_metrics(run_id, metric_filter=LOSS), 200).json()
    assert list(every) == [LOSS]
    assert values(every, LOSS) == ["0.5", "1.5", "2.5", "3.5", "4.5", "5.5"]
    assert every[LOSS][0]["cumulative"] is False
    newest = result(client.get_run_metrics(run_id, metric_filter=LOSS, last_n=2), 200).json()
    assert values(newest, LOSS) == ["4.5", "5.5"]
    since = start + dt.timedelta(seconds=3)  # sent as str(datetime): "2026-01-01 12:00:03"
    newer = result(client.get_run_metrics(run_id, since=since, metric_filter=LOSS), 200).json()
    assert values(newer, LOSS) == ["4.5", "5.5"]
    summarized = result(client.get_run_metrics(run_id, summarize=3, metric_filter=LOSS), 200)
    assert values(summarized.json(), LOSS) == ["1.0", "3.0", "5.0"]

    # The pod's resource series (the seed's container_* names), sampled by the server.
    def sampled() -> dict[str, Any] | None:
        response = client.get_pod_metrics(pod["name"]).result(timeout=60)
        if response.status_code == 404:  # listed by the backend, not yet recorded
            return None
        series: dict[str, Any] = result_of(response, 200).json()
        return series if len(series.get(CPU, [])) >= 3 else None

    pod_series = wait_for(sampled, what="three CPU samples of the pod", timeout_s=60)
    first = dt.datetime.strptime(pod_series[CPU][0]["date"], "%Y-%m-%dT%H:%M:%S.%fZ")
    later = result(client.get_pod_metrics(pod["name"], since=first), 200).json()
    assert pod_series[CPU][0] not in later[CPU]
    assert later[CPU][0] in pod_series[CPU]
    short = result(client.get_pod_metrics(pod["name"], summarize=1), 200).json()
    assert all(len(points) == 1 for points in short.values())
    assert pod["name"] in result(client.get_all_metrics(), 200).json()

    download = result(client.download_run_metrics(run_id), 200)
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        names = set(archive.namelist())
        assert "official_result.txt" in names
        loss_file = json.loads(archive.read(f"result_{LOSS}.json"))
    assert f"{pod['name']}_{CPU}.json" in names
    assert [point["value"] for point in loss_file] == values(every, LOSS)

    result(client.delete_run(run_id), 200)

    def aborted() -> dict[str, Any] | None:
        state: dict[str, Any] = result(client.get_run(run_id), 200).json()
        return state if state["state"] == "ABORTED" else None

    wait_for(aborted, what=f"run {run_id} to be ABORTED", timeout_s=60)
    assert [r["id"] for r in result(client.get_runs(), 200).json()] == [run_id]


def test_task_result_sentence_is_stored_and_is_the_official_result(
    mlbench: MLBench, dashboard: Dashboard
) -> None:
    # MLBench's workers post the goal's sentence as a metric; its download wrote it to
    # official_result.txt.
    client = dashboard.client(mlbench)
    created = client.create_run("result", 1, num_cpus=1.0, image=LOGREG, backend="GLOO")
    run_id = result(created, 200).json()["id"]

    result(client.post_metric(run_id, "TaskResult @ 0", SENTENCE, metadata="goal"), 201)

    posted = result(client.get_run_metrics(run_id, metric_filter="TaskResult @ 0"), 200).json()
    assert values(posted, "TaskResult @ 0") == [SENTENCE]
    download = result(client.download_run_metrics(run_id), 200)
    with zipfile.ZipFile(io.BytesIO(download.content)) as archive:
        assert archive.read("official_result.txt").decode() == SENTENCE
    result(client.delete_run(run_id), 200)


def test_writes_without_the_token_are_refused_with_a_message(mlbench: MLBench, serve: Any) -> None:
    dashboard: Dashboard = serve(token=TOKEN)
    host = dashboard.url.split("@", 1)[1]
    anonymous = dashboard.client(mlbench, url=host)
    wrong = dashboard.client(mlbench, url=f"mlbench:not-the-token-0123456789@{host}")

    # No token: 401; a wrong one: 403 (distbench's rule for every client).
    for client, status in ((anonymous, 401), (wrong, 403)):
        refused = result(client.create_run("nope", 1, image=LOGREG, backend="GLOO"), status)
        # MLBench's CLI prints response.json()["message"].
        assert refused.json()["message"]
        result(client.post_metric(1, LOSS, 1.0), status)
    # Reads stay open unless the server protects them.
    assert result(anonymous.get_runs(), 200).json() == []
