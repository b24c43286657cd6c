"""A run's path options may name only paths under the data root: anything else is a 400 before
the run starts, and the answer for a path outside the root is the same whether it exists or not.
Checked again in the worker, and the worker's own errors never quote a file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest

from distbench import benchmarks
from distbench.backends.local.launch import Rendezvous, worker_env
from distbench.benchmarks.paths import DataPath, confine_path, path_options
from distbench.errors import InvalidInput
from distbench.settings import Settings
from distbench.store.records import RunRecord
from distbench.worker.env import read_env
from tests.api.helpers import client
from tests.benchmarks.cifar_files import write_tiny_cifar10
from tests.conftest import RunningServer, StartServer

FILE = DataPath("file")
DIR = DataPath("dir")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = tmp_path / "datasets"
    made.mkdir()
    (made / "train.svm").write_text("1 1:0.5\n-1 2:0.25\n")
    return made


def refusal(name: str, value: str, marker: DataPath, root: Path) -> str:
    with pytest.raises(InvalidInput) as caught:
        confine_path(name, value, marker, data_root=root)
    assert caught.value.details["errors"][0]["field"] == f"options.{name}"
    return caught.value.message


# -- the rule -------------------------------------------------------------------------------------
def test_paths_under_the_root_resolve_absolute_or_relative(root: Path) -> None:
    train = str(root / "train.svm")
    assert confine_path("data_path", train, FILE, data_root=root) == train
    assert confine_path("data_path", "train.svm", FILE, data_root=root) == train
    assert confine_path("data_path", "./x/../train.svm", FILE, data_root=root) == train
    # A folder may not exist yet (a download creates it).
    assert confine_path("data_dir", "cifar10", DIR, data_root=root) == str(root / "cifar10")


@pytest.mark.parametrize(
    "value", ["/etc/shadow", "../outside.svm", "/", "x/../../outside.svm", "~/.ssh/id_rsa"]
)
def test_paths_outside_the_root_are_refused_naming_the_root(root: Path, value: str) -> None:
    if value.startswith("~"):
        # Not expanded: the server's home is not the caller's; it stays under the root.
        assert confine_path("data_dir", value, DIR, data_root=root).startswith(str(root))
        return
    message = refusal("data_path", value, FILE, root)
    assert "outside the data root" in message
    assert str(root) in message


def test_the_answer_outside_the_root_does_not_depend_on_existence(
    root: Path, tmp_path: Path
) -> None:
    existing = tmp_path / "secret.txt"
    existing.write_text("top secret\n")
    missing = tmp_path / "missing.txt"
    for marker in (FILE, DIR):
        answers = {
            refusal("data_path", str(path), marker, root).replace(str(path), "PATH")
            for path in (existing, missing, tmp_path / "datasets" / ".." / "secret.txt")
        }
        assert len(answers) == 1, answers


def test_a_symlink_under_the_root_may_not_lead_out_of_it(root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("top secret\n")
    (root / "link.svm").symlink_to(tmp_path / "secret.txt")
    (root / "outside").symlink_to(tmp_path)
    assert "outside the data root" in refusal("data_path", "link.svm", FILE, root)
    assert "outside the data root" in refusal("data_path", "outside/secret.txt", FILE, root)
    assert "outside the data root" in refusal("data_dir", "outside", DIR, root)


def test_a_symlinked_root_is_followed(root: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    resolved = str(root / "train.svm")
    assert confine_path("data_path", "train.svm", FILE, data_root=alias) == resolved
    assert confine_path("data_path", str(alias / "train.svm"), FILE, data_root=alias) == resolved


def test_under_the_root_a_file_must_exist_and_a_folder_be_one(root: Path) -> None:
    assert "no such file under the data root" in refusal("data_path", "nope.svm", FILE, root)
    assert "no such file" in refusal("data_path", ".", FILE, root)
    assert "is not a folder" in refusal("data_dir", "train.svm", DIR, root)
    assert "NUL" in refusal("data_path", "train\x00.svm", FILE, root)


def test_the_builtin_tasks_mark_their_path_options() -> None:
    marked = {
        name: set(path_options(spec.options)) for name, spec in benchmarks.available().items()
    }
    assert marked["logreg"] == {"data_path", "validation_path"}
    assert marked["resnet20-cifar10"] == {"data_dir"}
    assert marked["digits"] == marked["allreduce"] == set()


def test_the_default_root_is_in_the_data_dir_and_can_be_set(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.run_data_root == tmp_path / "datasets"
    assert Settings(data_dir=tmp_path, data_root=tmp_path / "sets").run_data_root == (
        tmp_path / "sets"
    )


def test_the_cli_passes_data_root_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from distbench.cli import main as cli

    seen: dict[str, Any] = {}

    def build_settings(**given: Any) -> Settings:
        seen.update(given)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "build_settings", build_settings)
    result = CliRunner().invoke(cli.app, ["serve", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert seen["data_root"] == str(tmp_path)


# -- at POST /api/runs/ ---------------------------------------------------------------------------
def post(http: httpx.Client, benchmark: str, options: dict[str, Any]) -> httpx.Response:
    body = {"name": "paths", "num_workers": 1, "benchmark": benchmark, "options": options}
    return http.post("/api/runs/", json=body)


def assert_refused_outside(response: httpx.Response, root: Path) -> dict[str, Any]:
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "invalid_input"
    assert "outside the data root" in error["message"]
    assert str(root.resolve()) in error["message"]
    return error


@pytest.mark.parametrize(
    ("benchmark", "option"),
    [("logreg", "data_path"), ("logreg", "validation_path"), ("resnet20-cifar10", "data_dir")],
)
def test_a_run_naming_a_path_outside_the_root_is_a_400_whether_it_exists_or_not(
    server: RunningServer, tmp_path: Path, benchmark: str, option: str
) -> None:
    root = server.settings.run_data_root
    existing = tmp_path / "secret.txt"
    existing.write_text("top secret\n")
    missing = tmp_path / "missing.txt"
    root.mkdir(parents=True)
    (root / "train.svm").write_text("1 1:0.5\n")
    extra = {"data_path": "train.svm"} if option == "validation_path" else {}
    with client(server) as http:
        answers = []
        for path in ("/etc/shadow", str(existing), str(missing)):
            error = assert_refused_outside(post(http, benchmark, {**extra, option: path}), root)
            assert error["details"]["errors"][0]["field"] == f"options.{option}"
            answers.append(error["message"].replace(repr(path), "PATH"))
        assert len(set(answers)) == 1, answers
        assert http.get("/api/runs/").json() == []


def test_traversal_and_symlinks_out_of_the_root_are_a_400(
    server: RunningServer, tmp_path: Path
) -> None:
    root = server.settings.run_data_root
    root.mkdir(parents=True)
    (tmp_path / "secret.svm").write_text("1 1:0.5\n")
    (root / "link.svm").symlink_to(tmp_path / "secret.svm")
    with client(server) as http:
        for path in ("../../secret.svm", str(root / ".." / ".." / "secret.svm"), "link.svm"):
            assert_refused_outside(post(http, "logreg", {"data_path": path}), root)
        assert http.get("/api/runs/").json() == []


def test_a_file_under_the_root_starts_the_run_with_its_resolved_path(
    server: RunningServer,
) -> None:
    root = server.settings.run_data_root
    root.mkdir(parents=True)
    (root / "train.svm").write_text("1 1:0.5\n-1 2:0.25\n")
    with client(server) as http:
        response = post(http, "logreg", {"data_path": "train.svm"})
        assert response.status_code == 200, response.text
        assert response.json()["options"]["data_path"] == str(root.resolve() / "train.svm")


def test_an_operator_chosen_root_admits_its_own_files(
    start_server: StartServer, tmp_path: Path
) -> None:
    sets = tmp_path / "sets"
    write_tiny_cifar10(sets / "cifar")
    server = start_server(data_root=sets)
    with client(server) as http:
        response = post(http, "resnet20-cifar10", {"data_dir": str(sets / "cifar")})
        assert response.status_code == 200, response.text


# -- in the worker --------------------------------------------------------------------------------
def test_workers_are_told_the_root_and_refuse_paths_outside_it(tmp_path: Path) -> None:
    run = RunRecord(
        id=3,
        name="paths",
        created_at=dt.datetime.now(dt.UTC),
        started_at=None,
        finished_at=None,
        state="INITIALIZED",
        job_id="job",
        job_metadata={},
        num_workers=1,
        num_cpus=1.0,
        max_bandwidth=None,
        benchmark="logreg",
        backend="gloo",
        options={"data_path": "/etc/shadow"},  # as if it had not come through the server
    )
    meeting = Rendezvous(
        master_addr="127.0.0.1",
        master_port=29500,
        server_url="http://127.0.0.1:9",
        server_socket=None,
        run_token=None,
        status_dir=str(tmp_path),
        data_root=str(tmp_path / "datasets"),
    )
    env = read_env(worker_env(run, 0, "distbench-worker-3-0", meeting, namespaced=False))
    assert env.data_root == tmp_path / "datasets"

    spec = benchmarks.get(env.benchmark)
    with pytest.raises(InvalidInput, match="outside the data root"):
        benchmarks.validated_options(spec, env.options, data_root=env.data_root)
