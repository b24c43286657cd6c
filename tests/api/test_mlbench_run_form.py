"""POST /api/runs/ as MLBench's ``create_run`` sends it: a form naming an image, GLOO/NCCL/MPI
in upper case, ``gpu_enabled``, ``light_target`` and always ``max_bandwidth=1000``; each must start
the task the image means (or a 400 naming those distbench has), never another."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest

from distbench import benchmarks
from distbench.benchmarks import mlbench_images
from distbench.store.records import NewRun
from tests.api.helpers import client, error_code, get_run
from tests.backends.local_helpers import LocalServers, wait_for_state
from tests.backends.local_helpers import local_servers as local_servers
from tests.conftest import RunningServer, StartServer
from tests.fake_backend import FakeBackend

TOKEN = "mlbench-form-token"
RESNET = "mlbench/pytorch-cifar10-resnet20-all-reduce:latest"
RESNET_DDP = "mlbench/pytorch-cifar10-resnet20-ddp:latest"
LOGREG = "mlbench/pytorch-epsilon-logistic-regression-all-reduce:latest"
BACKEND_BENCHMARK = "mlbench/pytorch-backend-benchmark:latest"
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def mlbench_form(**fields: Any) -> dict[str, str]:
    """Every field mlbench-core 3.0.0's ``create_run`` sends, with its defaults, as text."""
    form = {
        "name": "mlbench run",
        "num_workers": "2",
        "num_cpus": "2.0",
        "max_bandwidth": "1000",
        "gpu_enabled": "false",
        "light_target": "false",
        "run_all_nodes": "false",
        "image_name": LOGREG,
        "backend": "GLOO",
    }
    form.update({key: str(value) for key, value in fields.items()})
    return form


def post_form(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/api/runs/", data=mlbench_form(**fields))


def started(http: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = post_form(http, **fields)
    assert response.status_code == 200, response.text
    return get_run(http, response.json()["id"])


class GpuFakeBackend(FakeBackend):
    """The fake backend on a machine with GPUs: ``gpu`` is stored, not refused."""

    def check(self, new: NewRun) -> None:
        super().check(replace(new, gpu=False))


# -- images -> tasks -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("image_name", "task", "options"),
    [
        (RESNET, "resnet20-cifar10", {"target_accuracy": 0.80}),
        (RESNET_DDP, "resnet20-cifar10", {"target_accuracy": 0.80}),
        (LOGREG, "logreg", {"target_accuracy": 0.89}),
        (BACKEND_BENCHMARK, "allreduce", {}),
        ("PyTorch Cifar-10 ResNet-20", "resnet20-cifar10", {"target_accuracy": 0.80}),
        ("pytorch linear logistic regression", "logreg", {"target_accuracy": 0.89}),
        ("PyTorch Distributed Backend benchmarking", "allreduce", {}),
        ("mlbench/pytorch-epsilon-logistic-regression-all-reduce", "logreg", {}),
    ],
)
def test_mlbench_create_run_form_starts_the_images_task(
    server: RunningServer, image_name: str, task: str, options: dict[str, float]
) -> None:
    with client(server) as http:
        run = started(http, image_name=image_name)
    assert run["benchmark"] == task
    assert run["backend"] == "gloo"
    assert run["gpu"] is False
    assert run["num_workers"] == 2
    assert run["num_cpus"] == 2.0
    assert run["command"] is None
    for name, value in options.items():
        assert run["options"][name] == value
    origin = run["job_metadata"]["mlbench"]
    assert origin["image_name"] == image_name
    assert origin["task"] == task
    assert origin["light_target"] is False


def test_the_ddp_image_says_in_warnings_what_differs(server: RunningServer) -> None:
    with client(server) as http:
        run = started(http, image_name=RESNET_DDP)
    assert any("DistributedDataParallel" in w for w in run["job_metadata"]["warnings"])


@pytest.mark.parametrize(
    ("image_name", "light", "target", "goal"),
    [
        (RESNET, "true", 0.70, "light"),
        (RESNET, "false", 0.80, "full"),
        (LOGREG, "TRUE", 0.80, "light"),
        (LOGREG, "False", 0.89, "full"),
    ],
)
def test_light_target_selects_mlbenchs_light_goal(
    server: RunningServer, image_name: str, light: str, target: float, goal: str
) -> None:
    with client(server) as http:
        run = started(http, image_name=image_name, light_target=light)
    assert run["options"]["target_accuracy"] == target
    assert run["job_metadata"]["mlbench"]["goal"] == goal
    assert run["job_metadata"]["mlbench"]["goal_options"] == {"target_accuracy": target}


def test_an_explicit_option_wins_over_the_images_goal(server: RunningServer) -> None:
    with client(server) as http:
        body = {
            "name": "x",
            "num_workers": 1,
            "image_name": LOGREG,
            "light_target": True,
            "options": {"target_accuracy": 0.75},
        }
        response = http.post("/api/runs/", json=body)
        assert response.status_code == 200, response.text
    assert response.json()["options"]["target_accuracy"] == 0.75


@pytest.mark.parametrize(
    "image_name",
    [
        "mlbench/pytorch-wmt16-gnmt-all-reduce:latest",
        "mlbench/pytorch-wmt17-transformer-all-reduce:latest",
        "mlbench/tensorflow-cifar10-resnet:latest",
        "mlbench/pytorch-wikitext2-lstm-all-reduce:latest",
        "PyTorch Machine Translation GNMT",
        "someone/something-else:1.0",
    ],
)
def test_an_image_without_a_task_is_a_400_naming_those_there_are(
    server: RunningServer, image_name: str
) -> None:
    with client(server) as http:
        response = post_form(http, image_name=image_name)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert image_name in error["message"]
        for runnable in (RESNET, RESNET_DDP, LOGREG, BACKEND_BENCHMARK):
            assert runnable in error["message"]
            assert runnable in error["details"]["images"]
        assert "custom_image" in error["message"]
        assert http.get("/api/runs/").json() == []


@pytest.mark.parametrize(
    ("benchmark", "status"), [("logreg", 200), ("digits", 400), ("resnet20-cifar10", 400)]
)
def test_benchmark_and_image_name_must_agree(
    server: RunningServer, benchmark: str, status: int
) -> None:
    with client(server) as http:
        response = post_form(http, benchmark=benchmark)
        assert response.status_code == status, response.text
        if status == 400:
            assert "disagree" in response.json()["error"]["message"]


def test_the_image_table_names_only_tasks_distbench_has() -> None:
    installed = set(benchmarks.available())
    for entry in mlbench_images.IMAGES:
        assert entry.task is None or entry.task in installed, entry


# -- backend -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"backend": "GLOO"}, "gloo"),
        ({"backend": "Gloo"}, "gloo"),
        ({"backend": "gloo"}, "gloo"),
        ({"backend": "custom_backend", "custom_backend": "GLOO"}, "gloo"),
        ({"backend": "CUSTOM_BACKEND", "custom_backend": "gloo"}, "gloo"),
    ],
)
def test_backend_names_are_accepted_in_any_case(
    server: RunningServer, fields: dict[str, str], stored: str
) -> None:
    with client(server) as http:
        assert started(http, **fields)["backend"] == stored


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"backend": "custom_backend"}, "needs custom_backend"),
        ({"backend": "custom_backend", "custom_backend": "ucc"}, "'gloo', 'nccl' or 'mpi'"),
        ({"backend": "TCP"}, "'gloo', 'nccl' or 'mpi'"),
    ],
)
def test_an_unknown_backend_is_a_400_naming_the_known_ones(
    server: RunningServer, fields: dict[str, str], needle: str
) -> None:
    with client(server) as http:
        response = post_form(http, **fields)
        assert response.status_code == 400, response.text
        assert needle in response.json()["error"]["message"]


@sqlite_only
def test_mpi_is_a_400_naming_the_backends_the_workers_have(local_servers: LocalServers) -> None:
    # torch's pip wheels have no MPI backend (torch.distributed.is_mpi_available() is False):
    # the real backend's check names what its workers can use.
    server = local_servers.start(warm_launcher=False)
    with server.client() as http:
        for name in ("MPI", "mpi", "Mpi"):
            response = post_form(http, backend=name)
            assert response.status_code == 400, response.text
            message = response.json()["error"]["message"]
            assert "'mpi'" in message
            assert "gloo" in message
        assert http.get("/api/runs/").json() == []


# -- gpu_enabled ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("gpu_enabled", "gpu"), [("true", True), ("True", True), ("FALSE", False)])
def test_gpu_enabled_means_gpu(start_server: StartServer, gpu_enabled: str, gpu: bool) -> None:
    server = start_server(backend=GpuFakeBackend())
    with client(server) as http:
        run = started(http, gpu_enabled=gpu_enabled, image_name=RESNET, backend="NCCL")
    assert run["gpu"] is gpu
    assert run["backend"] == "nccl"


def test_gpu_enabled_on_a_machine_without_gpus_is_the_backends_400(server: RunningServer) -> None:
    with client(server) as http:
        response = post_form(http, gpu_enabled="true")
        assert response.status_code == 400
        assert "GPU" in response.json()["error"]["message"]


def test_gpu_and_gpu_enabled_that_disagree_are_a_400(server: RunningServer) -> None:
    with client(server) as http:
        body = {"name": "x", "num_workers": 1, "gpu": True, "gpu_enabled": False}
        response = http.post("/api/runs/", json=body)
        assert response.status_code == 400
        assert "disagree" in response.json()["error"]["message"]


# -- max_bandwidth=1000 on a server that cannot cap ----------------------------------------------
def test_mlbenchs_default_cap_is_recorded_as_not_enforced_where_it_cannot_be(
    start_server: StartServer,
) -> None:
    server = start_server(backend=FakeBackend(supports_bandwidth=False))
    with client(server) as http:
        run = started(http)
    assert run["max_bandwidth"] is None  # the run is uncapped, and says so
    cap = run["job_metadata"]["bandwidth_cap"]
    assert cap["requested_mbit"] == 1000
    assert cap["enforced"] is False
    assert "cannot cap bandwidth" in cap["reason"]
    assert any("max_bandwidth=1000" in w for w in run["job_metadata"]["warnings"])


def test_a_cap_the_server_can_enforce_is_kept(server: RunningServer) -> None:
    with client(server) as http:
        run = started(http)
    assert run["max_bandwidth"] == 1000
    assert "bandwidth_cap" not in run["job_metadata"]
    assert "warnings" not in run["job_metadata"]


@pytest.mark.parametrize(
    "send",
    [
        # distbench's own JSON body, even naming an image
        lambda http: http.post(
            "/api/runs/",
            json={"name": "x", "num_workers": 1, "max_bandwidth": 1000, "image_name": LOGREG},
        ),
        # a form that is not MLBench's (no image): a user's explicit cap
        lambda http: http.post(
            "/api/runs/", data={"name": "x", "num_workers": "1", "max_bandwidth": "1000"}
        ),
    ],
)
def test_an_explicit_cap_the_server_cannot_enforce_stays_a_400(
    start_server: StartServer, send: Any
) -> None:
    server = start_server(backend=FakeBackend(supports_bandwidth=False))
    with client(server) as http:
        response = send(http)
        assert response.status_code == 400, response.text
        assert error_code(response) == "limit_unsupported"
        assert http.get("/api/runs/").json() == []


@sqlite_only
def test_an_mlbench_run_starts_uncapped_on_a_real_backend_that_cannot_cap(
    local_servers: LocalServers,
) -> None:
    server = local_servers.start(warm_launcher=False)
    assert server.backend is not None
    # As on a server that is not root: what the backend found at start decides (we are root).
    server.backend.namespaces_problem = "the server is not running as root (simulated)"
    with server.client() as http:
        json_body = {"name": "x", "num_workers": 2, "max_bandwidth": 1000}
        refused = http.post("/api/runs/", json=json_body)
        assert refused.status_code == 400, refused.text
        assert "not running as root (simulated)" in refused.json()["error"]["message"]
        response = post_form(
            http, image_name=BACKEND_BENCHMARK, num_cpus="1", name="uncapped allreduce"
        )
        assert response.status_code == 200, response.text
        run = wait_for_state(http, response.json()["id"], "FINISHED", timeout_s=120)
    assert run["benchmark"] == "allreduce"
    assert run["max_bandwidth"] is None
    assert run["job_metadata"]["bandwidth_cap"]["enforced"] is False
    assert run["job_metadata"]["limits"]["bandwidth_limit"] == "none"
    assert "loopback" in run["job_metadata"]["limits"]["network"]
    assert run["job_metadata"]["warnings"]


# -- custom_image --------------------------------------------------------------------------------
CUSTOM = {
    "image_name": "custom_image",
    "custom_image_name": "me/my-trainer:1",
    "custom_image_command": "python train.py --run_id {run_id} --note 'two words'",
}


def test_a_custom_image_is_a_command_run_and_needs_commands_allowed(
    start_server: StartServer,
) -> None:
    server = start_server(token=TOKEN)
    with client(server, TOKEN) as http:
        response = post_form(http, **CUSTOM)
        assert response.status_code == 403
        assert "--allow-commands" in response.json()["error"]["message"]


def test_a_custom_image_command_is_split_as_a_shell_would(start_server: StartServer) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with client(server, TOKEN) as http:
        run = started(http, **CUSTOM)
    assert run["command"] == ["python", "train.py", "--run_id", "{run_id}", "--note", "two words"]
    assert run["benchmark"] == "command"
    origin = run["job_metadata"]["mlbench"]
    assert origin["custom_image_name"] == "me/my-trainer:1"
    assert origin["custom_image_command"] == CUSTOM["custom_image_command"]
    assert any("me/my-trainer:1" in w for w in run["job_metadata"]["warnings"])


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"custom_image_command": ""}, "needs custom_image_command"),
        ({"custom_image_command": "python 'unclosed"}, "close its quotes"),
        ({"custom_image_command": "   "}, "blank"),
        ({"benchmark": "logreg"}, "either a benchmark or a command"),
    ],
)
def test_bad_custom_image_requests_are_400s(
    start_server: StartServer, fields: dict[str, str], needle: str
) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with client(server, TOKEN) as http:
        response = post_form(http, **{**CUSTOM, **fields})
        assert response.status_code == 400, response.text
        assert needle in response.json()["error"]["message"]


@pytest.mark.parametrize("field", ["custom_image_name", "custom_image_command"])
def test_custom_image_fields_without_custom_image_are_a_400(
    start_server: StartServer, field: str
) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    with client(server, TOKEN) as http:
        body = {"name": "x", "num_workers": 1, field: "python train.py"}
        response = http.post("/api/runs/", json=body)
        assert response.status_code == 400, response.text
        assert "needs image_name=custom_image" in response.json()["error"]["message"]
