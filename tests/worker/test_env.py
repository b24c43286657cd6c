"""The worker's environment contract: torchrun's variables plus distbench's, checked in one place
with messages that say exactly what is wrong."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distbench.worker.env import WorkerEnv, WorkerEnvError, WorkerVar, read_env
from tests.source_literals import spellings_outside

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


def problems(env: dict[str, str]) -> str:
    with pytest.raises(WorkerEnvError) as caught:
        read_env(env)
    return str(caught.value)


def test_torchrun_environment_alone_is_enough() -> None:
    env = read_env(TORCHRUN)
    assert (env.rank, env.world_size, env.local_rank) == (1, 2, 1)
    assert (env.master_addr, env.master_port) == ("127.0.0.1", 29500)
    assert env.dist_backend == "gloo"
    assert env.run_id is None
    assert env.server_url is None
    assert env.pod_name == "rank-1"
    assert env.benchmark == "digits"
    assert dict(env.options) == {}
    assert env.status_dir is None


def test_distbench_variables_are_read(tmp_path: Path) -> None:
    env = read_env(
        {
            **TORCHRUN,
            "LOCAL_RANK": "0",
            "DISTBENCH_RUN_ID": "7",
            "DISTBENCH_POD_NAME": "distbench-worker-7-1",
            "DISTBENCH_SERVER_URL": "http://127.0.0.1:8000",
            "DISTBENCH_SERVER_SOCKET": "/tmp/relay.sock",
            "DISTBENCH_TOKEN": "run-7-abc",
            "DISTBENCH_BENCHMARK": "digits",
            "DISTBENCH_OPTIONS": '{"target_accuracy": 0.9}',
            "DISTBENCH_NUM_CPUS": "0.5",
            "DISTBENCH_DIST_BACKEND": "gloo",
            "DISTBENCH_STATUS_DIR": str(tmp_path),
        }
    )
    assert env.local_rank == 0
    assert env.run_id == 7
    assert env.pod_name == "distbench-worker-7-1"
    assert env.server_url == "http://127.0.0.1:8000"
    assert env.server_socket == "/tmp/relay.sock"
    assert env.token == "run-7-abc"
    assert dict(env.options) == {"target_accuracy": 0.9}
    assert env.num_cpus == 0.5
    assert env.status_dir == tmp_path


def test_empty_environment_names_every_missing_variable() -> None:
    message = problems({})
    for key in ("RANK", "WORLD_SIZE", "MASTER_PORT"):
        assert f"{key} is not set (torchrun and distbench set it for each worker)" in message
    assert "MASTER_ADDR is not set (the address of rank 0)" in message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"RANK": "one"}, "RANK='one' is not an integer"),
        ({"RANK": "-1"}, "RANK=-1 must be >= 0"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 must be >= 1"),
        ({"RANK": "2"}, "RANK=2 must be smaller than WORLD_SIZE=2"),
        ({"LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not an integer"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT=70000 is not a TCP port (1-65535)"),
        ({"MASTER_PORT": "http"}, "MASTER_PORT='http' is not an integer"),
        ({"MASTER_ADDR": ""}, "MASTER_ADDR is not set"),
        ({"DISTBENCH_RUN_ID": "0"}, "DISTBENCH_RUN_ID=0 must be >= 1"),
        ({"DISTBENCH_OPTIONS": "{bad"}, "DISTBENCH_OPTIONS is not JSON"),
        ({"DISTBENCH_OPTIONS": "[1, 2]"}, "DISTBENCH_OPTIONS must be a JSON object"),
        ({"DISTBENCH_NUM_CPUS": "half"}, "DISTBENCH_NUM_CPUS='half' is not a number"),
        (
            {"DISTBENCH_SERVER_URL": "ftp://example.org", "DISTBENCH_RUN_ID": "1"},
            "DISTBENCH_SERVER_URL='ftp://example.org' is not an http(s) URL",
        ),
        (
            {"DISTBENCH_SERVER_URL": "http://127.0.0.1:8000"},
            "DISTBENCH_RUN_ID is not set, but DISTBENCH_SERVER_URL is",
        ),
    ],
)
def test_each_bad_value_is_named(changes: dict[str, str], expected: str) -> None:
    assert expected in problems({**TORCHRUN, **changes})


def test_all_problems_are_reported_at_once() -> None:
    message = problems({**TORCHRUN, "RANK": "x", "MASTER_PORT": "0", "DISTBENCH_NUM_CPUS": "?"})
    assert "RANK='x' is not an integer" in message
    assert "MASTER_PORT=0 must be >= 1" in message
    assert "DISTBENCH_NUM_CPUS='?' is not a number" in message
    assert message.count("; ") >= 2


def test_worker_with_a_bad_environment_exits_2_saying_why() -> None:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN and k != "LOCAL_RANK"}
    env = {k: v for k, v in env.items() if not k.startswith("DISTBENCH_")}
    env.update({"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    result = subprocess.run(
        [sys.executable, "-m", "distbench.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "distbench worker: bad environment: RANK is not set" in result.stderr


def test_what_a_launcher_writes_a_worker_reads_back(tmp_path: Path) -> None:
    written = WorkerEnv(
        rank=1,
        world_size=3,
        local_rank=0,
        master_addr="10.0.0.2",
        master_port=29500,
        dist_backend="nccl",
        run_id=7,
        pod_name="distbench-worker-7-1",
        server_url="http://127.0.0.1:8000",
        server_socket="/tmp/relay.sock",
        token="run-7-abc",
        benchmark="logreg",
        options={"target_accuracy": 0.9, "nested": {"a": [1, 2]}},
        num_cpus=0.5,
        status_dir=tmp_path,
        device="cuda",
        metrics_flush_s=12.5,
        data_root=tmp_path / "data",
    )
    assert read_env(written.to_environ()) == written
    assert WorkerEnv.from_environ(written.to_environ()) == written


def test_unset_fields_and_the_workers_own_defaults_are_not_written() -> None:
    env = WorkerEnv(rank=0, world_size=1, local_rank=0, master_addr="127.0.0.1", master_port=1)
    assert env.to_environ() == {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1",
        "DISTBENCH_BENCHMARK": "digits",
        "DISTBENCH_OPTIONS": "{}",
        "DISTBENCH_DIST_BACKEND": "gloo",
    }
    assert read_env(env.to_environ()) == dataclasses.replace(env, pod_name="rank-0")


def test_the_worker_variables_are_spelled_only_in_their_owner_module() -> None:
    """Launchers write the worker's environment through ``WorkerEnv.to_environ`` and read
    names from ``WorkerVar``: a literal ``"DISTBENCH_RUN_ID"`` elsewhere is a second
    spelling of the contract, free to drift from the worker's."""
    names = {var.value for var in WorkerVar if var.value.startswith("DISTBENCH_")}
    found = spellings_outside(
        lambda literal: literal in names,
        owners={
            "worker/env.py",
            # The CLI's --token option reads the client's own DISTBENCH_TOKEN: the same
            # name for the same token, but a setting of the command line, not the worker's.
            "cli/connection.py",
        },
    )
    assert found == []
