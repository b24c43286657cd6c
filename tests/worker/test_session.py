"""The worker API for one's own training script (``distbench.worker.init``), in real processes
joined by gloo on a free port, reporting to a real server; and the example script that uses it,
alone and under torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from distbench import worker
from tests.backends.local_helpers import wait_for
from tests.benchmarks.distributed import finish, start_processes
from tests.conftest import RunningServer, StartServer, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_training.py"
TIMEOUT_S = 120
# Workers fork from a forkserver that imported torch once (as tests/benchmarks/distributed.py).
PRELOAD = ["torch", "torch.distributed", "distbench.worker", "tests.worker.test_session"]


def _script(environ: dict[str, str], out: str) -> None:
    """What a training script does with a session, less the training."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    with worker.init(environ) as session:
        rank = session.rank
        with session.compute():
            time.sleep(0.01 * (rank + 1))
        with session.communication():
            dist.all_reduce(torch.ones(1))
        local = {
            "compute_s": session.timers.compute_s,
            "communication_s": session.timers.communication_s,
        }
        session.report("batch_loss", 0.5)
        session.report("rank_seen", rank, every_rank=True)
        means = session.end_epoch(
            1, samples=10 * (rank + 1), val_accuracy=0.5 + 0.1 * rank, train_loss=2.0 - rank
        )
        facts = {
            "rank": rank,
            "world_size": session.world_size,
            "is_leader": session.is_leader,
            "device": str(session.device),
            "master": f"{session.env.master_addr}:{session.env.master_port}",
            "reporter": type(session.reporter).__name__,
            "threads": torch.get_num_threads(),
            "local": local,
            "means": means,
            "compute_s_after_epoch": session.timers.compute_s,
            "reached": [session.target_reached(), session.target_reached()],
        }
        # A script's first optimizer imports torch._dynamo, after the group exists.
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    # The group is gone, threads included: one left to interpreter shutdown can abort it.
    facts["threads_left"] = sorted(set(_thread_names()) & {"pt_gloo_runloop", "gloo_tcp_loop"})
    Path(out).write_text(json.dumps(facts))


def _thread_names() -> list[str]:
    names = []
    for task in Path("/proc/self/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:  # the thread ended between the listing and the read
            continue
    return names


def _stopped_script(environ: dict[str, str], out: str) -> None:
    """Reports a point, then waits to be stopped."""
    with worker.init(environ) as session:
        session.report("train_loss", 0.25)
        Path(out).write_text("reported")
        time.sleep(TIMEOUT_S)


def _processes(target: Any, environs: list[dict[str, str]], tmp_path: Path) -> list[Any]:
    arguments = [(env, str(tmp_path / f"out-{i}")) for i, env in enumerate(environs)]
    return start_processes(target, arguments, PRELOAD)


def run_script(environs: list[dict[str, str]], tmp_path: Path) -> list[dict[str, Any]]:
    """Run ``_script`` once per environment, in parallel; each rank's facts."""
    codes = finish(_processes(_script, environs, tmp_path))
    assert codes == [0] * len(environs), f"ranks exited {codes}"
    return [json.loads((tmp_path / f"out-{i}").read_text()) for i in range(len(environs))]


def rank_environs(world_size: int, **distbench: str) -> list[dict[str, str]]:
    port = str(free_port())
    return [
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "DISTBENCH_POD_NAME": f"pod-{rank}",
            **distbench,
        }
        for rank in range(world_size)
    ]


def new_run(server: RunningServer) -> int:
    with httpx.Client(base_url=server.url) as http:
        response = http.post("/api/runs/", json={"name": "own script", "num_workers": 1})
        assert response.status_code == 200, response.text
        run_id: int = response.json()["id"]
        return run_id


def run_series(server: RunningServer, run_id: int) -> dict[str, list[dict[str, Any]]]:
    with httpx.Client(base_url=server.url) as http:
        response = http.get(f"/api/metrics/{run_id}/", params={"metric_type": "run"})
        series: dict[str, list[dict[str, Any]]] = response.json()
        return series


def values(series: dict[str, list[dict[str, Any]]], name: str) -> list[float]:
    return [float(point["value"]) for point in series.get(name, [])]


def mean(numbers: list[float]) -> float:
    return sum(numbers) / len(numbers)


@pytest.mark.parametrize("world_size", [1, 2])
def test_session_reports_rank_means_to_the_server(
    start_server: StartServer, tmp_path: Path, world_size: int
) -> None:
    server = start_server()
    run_id = new_run(server)
    status_dir = tmp_path / "status"
    status_dir.mkdir()
    environs = rank_environs(
        world_size,
        DISTBENCH_RUN_ID=str(run_id),
        DISTBENCH_SERVER_URL=server.url,
        DISTBENCH_STATUS_DIR=str(status_dir),
        DISTBENCH_NUM_CPUS="1.5",
    )
    ranks = run_script(environs, tmp_path)

    leader = ranks[0]
    assert [r["rank"] for r in ranks] == list(range(world_size))
    assert [r["is_leader"] for r in ranks] == [True] + [False] * (world_size - 1)
    assert {r["world_size"] for r in ranks} == {world_size}
    assert {r["reporter"] for r in ranks} == {"BatchReporter"}
    assert {r["threads"] for r in ranks} == {2}  # DISTBENCH_NUM_CPUS, rounded up
    assert {r["device"] for r in ranks} == {"cpu"}
    # Every rank gets the same means back, so ranks decide alike.
    assert all(r["means"] == leader["means"] for r in ranks)
    assert {r["compute_s_after_epoch"] for r in ranks} == {0.0}
    assert [r["threads_left"] for r in ranks] == [[]] * world_size
    # Ready once joined; the exit status is the launcher's to write, not the session's.
    assert sorted(p.name for p in status_dir.iterdir()) == [
        f"pod-{rank}.ready" for rank in range(world_size)
    ]

    series = run_series(server, run_id)
    assert values(series, "epoch") == [1.0]
    assert series["epoch"][0]["metadata"] == '{"epoch": 1}'
    expected = {
        "val_accuracy": mean([0.5 + 0.1 * rank for rank in range(world_size)]),
        "train_loss": mean([2.0 - rank for rank in range(world_size)]),
        "compute_s": mean([r["local"]["compute_s"] for r in ranks]),
        "communication_s": mean([r["local"]["communication_s"] for r in ranks]),
        "samples_per_s": leader["means"]["samples_per_s"],
    }
    for name, value in expected.items():
        assert values(series, name) == [pytest.approx(value, rel=1e-9)], name
        assert series[name][0]["metadata"] == '{"epoch": 1}'
    assert expected["compute_s"] >= 0.01
    assert leader["means"]["samples_per_s"] > 0
    # The target is declared once, however often it is called.
    first, again = leader["reached"]
    assert first == again > 0
    assert values(series, "time_to_accuracy_s") == [pytest.approx(first, rel=1e-9)]
    assert series["time_to_accuracy_s"][0]["metadata"] == '{"epoch": 1}'
    # One writer per series by default; every_rank reports from each rank.
    assert values(series, "batch_loss") == [0.5]
    assert sorted(values(series, "rank_seen")) == [float(rank) for rank in range(world_size)]


def test_no_launcher_means_one_process_alone(tmp_path: Path) -> None:
    (facts,) = run_script([{}], tmp_path)
    assert (facts["rank"], facts["world_size"], facts["is_leader"]) == (0, 1, True)
    assert facts["master"].startswith("127.0.0.1:")
    assert facts["reporter"] == "NullReporter"
    assert facts["means"]["val_accuracy"] == pytest.approx(0.5)
    assert facts["reached"][0] == facts["reached"][1]


def test_a_partial_launcher_environment_is_named() -> None:
    with (
        pytest.raises(worker.WorkerEnvError, match="WORLD_SIZE is not set"),
        worker.init({"RANK": "0"}),
    ):
        pytest.fail("init joined with an incomplete environment")


def test_a_stopped_script_still_delivers_its_metrics(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    run_id = new_run(server)
    environs = rank_environs(1, DISTBENCH_RUN_ID=str(run_id), DISTBENCH_SERVER_URL=server.url)
    (process,) = _processes(_stopped_script, environs, tmp_path)
    wait_for(lambda: (tmp_path / "out-0").exists(), what="the point to be reported")
    os.kill(process.pid, signal.SIGTERM)
    assert finish([process]) == [128 + signal.SIGTERM]
    assert values(run_series(server, run_id), "train_loss") == [0.25]


def _example_env() -> dict[str, str]:
    launcher = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
    return {
        key: value
        for key, value in os.environ.items()
        if key not in launcher and not key.startswith(("DISTBENCH_", "TORCHELASTIC_"))
    }


@pytest.mark.parametrize("launch", ["python", "torchrun"])
def test_example_script_reaches_its_target(launch: str) -> None:
    if launch == "python":
        command = [sys.executable, str(EXAMPLE)]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [
            str(torchrun),
            "--nproc-per-node",
            "2",
            "--master-port",
            str(free_port()),
            str(EXAMPLE),
        ]
    result = subprocess.run(
        [*command, "--target", "0.9", "--lr", "0.1"],
        env=_example_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "epoch 1: train_loss" in result.stdout
    assert "target 0.9 reached in" in result.stdout, result.stdout
