"""The result summary written into ``job_metadata["result"]`` when a run ends."""

from __future__ import annotations

import json

from distbench.orchestrator.summary import peak_egress_mbit
from tests.api.helpers import client, start_run, wait_for, wait_for_state
from tests.conftest import RunningServer


def test_peak_egress_is_the_fastest_interval_in_mbit_per_s() -> None:
    second = 1_000_000
    points = [
        (0, 0.0, True, ""),
        (2 * second, 25e6, True, ""),  # 100 Mbit/s over 2 s
        (4 * second, 35e6, True, ""),  # 40 Mbit/s
        (5 * second, 35e6, True, ""),
    ]
    assert peak_egress_mbit(points) == 100.0
    assert peak_egress_mbit(points[:1]) is None
    # A text point (a value that is not a number) is no sample of the counter.
    assert peak_egress_mbit([*points[:2], (3 * second, "reset", True, ""), *points[2:]]) == 100.0


def test_finished_run_carries_its_result(server: RunningServer) -> None:
    with client(server) as http:
        run = start_run(http, options={"target_accuracy": 0.9})
        wait_for_state(http, run["id"], "STARTED")
        points = [
            {"run_id": run["id"], "name": "epoch", "value": 1},
            {"run_id": run["id"], "name": "val_accuracy", "value": 0.8},
            {"run_id": run["id"], "name": "compute_s", "value": 3.0},
            {"run_id": run["id"], "name": "communication_s", "value": 1.0},
            {"run_id": run["id"], "name": "epoch", "value": 2},
            {"run_id": run["id"], "name": "val_accuracy", "value": 0.93},
            {"run_id": run["id"], "name": "compute_s", "value": 3.0},
            {"run_id": run["id"], "name": "communication_s", "value": 1.0},
            {"run_id": run["id"], "name": "samples_per_s", "value": 1234.5},
            {"run_id": run["id"], "name": "time_to_accuracy_s", "value": 7.5},
            # Text values (MLBench's TaskResult is a sentence) count in no statistic.
            {"run_id": run["id"], "name": "val_accuracy", "value": "final: 93 %"},
            {"run_id": run["id"], "name": "compute_s", "value": "n/a"},
            {"run_id": run["id"], "name": "time_to_accuracy_s", "value": "reached at epoch 2"},
        ]
        assert http.post("/api/metrics/batch", json=points).status_code == 201
        server.fake.finish(run["id"])
        ended = wait_for(
            lambda: (
                (r := http.get(f"/api/runs/{run['id']}/").json())["job_metadata"].get("result")
                and r
            ),
            what="the result summary",
        )
        result = ended["job_metadata"]["result"]
        assert result["state"] == "FINISHED"
        assert result["target_reached"] is True
        assert result["time_to_accuracy_s"] == 7.5
        assert result["epochs"] == 2
        assert result["final_val_accuracy"] == 0.93
        assert result["compute_s"] == 6.0
        assert result["communication_s"] == 2.0
        assert result["communication_share"] == 0.25
        assert result["samples_per_s"] == 1234.5
        assert result["limits"] == {"num_cpus": 1.0, "max_bandwidth_mbit": None}
        assert result["total_time_s"] >= 0
        # The zip export's result line comes from the same summary.
        archive = http.get(
            f"/api/metrics/{run['id']}/", params={"metric_type": "run", "format": "zip"}
        )
        assert archive.status_code == 200
        json.dumps(result)  # plain JSON all the way down


def test_a_run_that_misses_its_target_says_so(server: RunningServer) -> None:
    with client(server) as http:
        run = start_run(http, options={"target_accuracy": 0.99})
        wait_for_state(http, run["id"], "STARTED")
        http.post("/api/metrics", json={"run_id": run["id"], "name": "val_accuracy", "value": 0.5})
        server.fake.fail(run["id"], "rank 1 exploded")
        ended = wait_for_state(http, run["id"], "FAILED")
        result = wait_for(
            lambda: http.get(f"/api/runs/{run['id']}/").json()["job_metadata"].get("result"),
            what="the result summary",
        )
    assert ended["job_metadata"]["error"] == "rank 1 exploded"
    assert result["target_reached"] is False
    assert result["time_to_accuracy_s"] is None
    assert result["final_val_accuracy"] == 0.5
