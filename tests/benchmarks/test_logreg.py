"""The ``logreg`` task (MLBench's task 2a): LIBSVM files read into the right tensors, synthetic data
from the seed, options checked before a run starts (a missing file is a 400 naming it), and real
training in two worker processes, on a file and through a real server to FINISHED."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from distbench import benchmarks
from distbench.benchmarks.libsvm import LibsvmError
from distbench.benchmarks.logreg import load_libsvm, synthetic
from distbench.benchmarks.logreg_options import LogregOptions
from distbench.errors import InvalidInput
from tests.api.helpers import client
from tests.backends.local_helpers import (
    LocalServers,
    dump,
    local_servers,
    post_run,
    run_metric_names,
    wait_for_state,
)
from tests.benchmarks.distributed import run_task
from tests.conftest import RunningServer

# The fixture lives with the backend tests; importing it here makes it this module's too.
__all__ = ["local_servers"]

# Where the database does not matter, one kind is enough (real runs cost seconds each).
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Small synthetic data: an epoch takes a fraction of a second on two workers.
SMALL = {"synthetic_samples": 2_000, "synthetic_features": 100, "batch_size": 50}

EPOCH_METRICS = {
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "samples_per_s",
    "compute_s",
    "communication_s",
    "validation_s",
}


def write_libsvm(path: Path, rows: list[tuple[int, dict[int, float]]]) -> Path:
    """A LIBSVM file: ``label index:value ...`` with 1-based indices, as epsilon's files are."""
    lines = [
        " ".join([f"{label:+d}", *(f"{i}:{v}" for i, v in sorted(features.items()))])
        for label, features in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def separable_rows(
    count: int, *, seed: int, zero_one: bool = False
) -> list[tuple[int, dict[int, float]]]:
    """Rows whose label is the sign of feature 1 minus feature 2 (sparse: feature 3 sometimes)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.rand(count, 3, generator=generator) * 2 - 1
    rows: list[tuple[int, dict[int, float]]] = []
    for a, b, c in values.tolist():
        label = 1 if a > b else (0 if zero_one else -1)
        features = {1: round(a, 4), 2: round(b, 4)}
        if c > 0:
            features[3] = round(c, 4)
        rows.append((label, features))
    return rows


# -- reading LIBSVM files -------------------------------------------------------------------------
def test_libsvm_file_is_read_dense_with_labels_as_targets(tmp_path: Path) -> None:
    train = write_libsvm(
        tmp_path / "train.svm",
        [(1, {1: 0.5, 3: -2.0}), (-1, {2: 1.5}), (1, {1: 1.0, 2: 1.0, 3: 1.0}), (-1, {})],
    )
    validation = write_libsvm(tmp_path / "val.svm", [(-1, {1: 0.25}), (1, {2: 4.0})])
    options = LogregOptions(data_path=str(train), validation_path=str(validation))

    train_x, train_y, val_x, val_y = load_libsvm(str(train), options)

    assert train_x.dtype == torch.float32
    assert train_x.tolist() == [[0.5, 0, -2.0], [0, 1.5, 0], [1.0, 1.0, 1.0], [0, 0, 0]]
    assert train_y.tolist() == [1.0, 0.0, 1.0, 0.0]
    # The validation file names fewer features; it is padded to the training file's width.
    assert val_x.tolist() == [[0.25, 0, 0], [0, 4.0, 0]]
    assert val_y.tolist() == [0.0, 1.0]


def test_zero_one_labels_and_a_held_out_share_without_validation_file(tmp_path: Path) -> None:
    rows = separable_rows(50, seed=3, zero_one=True)
    train = write_libsvm(tmp_path / "train.svm", rows)
    options = LogregOptions(data_path=str(train), validation_fraction=0.2)

    train_x, train_y, val_x, val_y = load_libsvm(str(train), options)

    assert (len(train_y), len(val_y)) == (40, 10)
    assert train_x.shape == (40, 3)
    assert set(torch.cat([train_y, val_y]).tolist()) == {0.0, 1.0}
    # Same seed, same split; every row lands in exactly one side with its own label.
    again = load_libsvm(str(train), options)
    assert all(
        torch.equal(a, b) for a, b in zip(again, (train_x, train_y, val_x, val_y), strict=True)
    )
    expected = {(round(r[1][1], 4), r[0]) for r in rows}
    got = {
        (round(float(x[0]), 4), int(y))
        for x, y in zip(torch.cat([train_x, val_x]), torch.cat([train_y, val_y]), strict=True)
    }
    assert got == expected


def test_labels_that_are_not_binary_are_an_error_naming_the_file(tmp_path: Path) -> None:
    train = write_libsvm(tmp_path / "multi.svm", [(1, {1: 1.0}), (2, {1: 2.0}), (3, {2: 7.0})])
    with pytest.raises(ValueError, match=r"multi\.svm: labels must be -1/\+1 or 0/1.*3 distinct"):
        load_libsvm(str(train), LogregOptions(data_path=str(train)))


# -- synthetic data -------------------------------------------------------------------------------
def test_synthetic_data_is_the_seeds_and_shaped_like_epsilon() -> None:
    options = LogregOptions(synthetic_samples=1_000, synthetic_features=50, seed=4)
    train_x, train_y, val_x, val_y = synthetic(options)

    assert (train_x.shape, val_x.shape) == ((800, 50), (200, 50))
    norms = torch.cat([train_x, val_x]).norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms))
    assert 0.35 < float(train_y.mean()) < 0.65
    same = synthetic(options)
    assert all(
        torch.equal(a, b) for a, b in zip(same, (train_x, train_y, val_x, val_y), strict=True)
    )
    other = synthetic(options.model_copy(update={"seed": 5}))
    assert not torch.equal(other[0], train_x)


# -- options --------------------------------------------------------------------------------------
def test_defaults_follow_mlbench_recipe() -> None:
    options = benchmarks.resolve_options("logreg", {})
    assert options["batch_size"] == 100
    assert options["learning_rate"] == 4.0
    assert options["max_epochs"] == 20
    assert options["synthetic_features"] == 2_000
    assert options["data_path"] is None


def test_a_missing_data_file_is_invalid_input_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "epsilon_normalized"
    with pytest.raises(InvalidInput) as caught:
        benchmarks.resolve_options("logreg", {"data_path": str(missing)}, data_root=tmp_path)
    assert str(missing) in str(caught.value)
    assert caught.value.details["errors"][0]["field"] == "options.data_path"

    train = write_libsvm(tmp_path / "train.svm", separable_rows(10, seed=0))
    with pytest.raises(InvalidInput, match=r"options\.validation_path: .*no such file"):
        benchmarks.resolve_options(
            "logreg",
            {"data_path": str(train), "validation_path": str(missing)},
            data_root=tmp_path,
        )
    with pytest.raises(InvalidInput, match="validation_path needs data_path"):
        benchmarks.resolve_options("logreg", {"validation_path": str(train)}, data_root=tmp_path)
    # A directory is not a LIBSVM file either.
    with pytest.raises(InvalidInput, match="no such file"):
        benchmarks.resolve_options("logreg", {"data_path": str(tmp_path)}, data_root=tmp_path)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"batch_size": 0}, "options.batch_size"),
        ({"learning_rate": -1}, "options.learning_rate"),
        ({"l2": -0.1}, "options.l2"),
        ({"target_accuracy": 1.5}, "options.target_accuracy"),
        ({"synthetic_label_noise": 0.5}, "options.synthetic_label_noise"),
        ({"epochs": 3}, "options.epochs"),
    ],
)
def test_bad_options_are_invalid_input(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        benchmarks.resolve_options("logreg", options)


def test_a_run_on_a_missing_file_is_a_400_naming_it(server: RunningServer) -> None:
    missing = str(server.settings.run_data_root / "nowhere.svm")
    body = {
        "name": "x",
        "num_workers": 2,
        "benchmark": "logreg",
        "options": {"data_path": missing},
    }
    with client(server) as http:
        response = http.post("/api/runs/", json=body)
        assert response.status_code == 400, response.text
        assert missing in response.json()["error"]["message"]
        assert http.get("/api/runs/").json() == []
        listed = {task["name"]: task for task in http.get("/api/benchmarks").json()}
        assert listed["logreg"]["defaults"]["target_accuracy"] == 0.83


# -- training -------------------------------------------------------------------------------------
def test_two_workers_train_on_a_libsvm_file_to_the_target(tmp_path: Path) -> None:
    train = write_libsvm(tmp_path / "train.svm", separable_rows(800, seed=1))
    validation = write_libsvm(tmp_path / "val.svm", separable_rows(200, seed=2))
    options = {
        "data_path": str(train),
        "validation_path": str(validation),
        "batch_size": 20,
        "learning_rate": 2.0,
        "target_accuracy": 0.9,
        "max_epochs": 30,
    }

    run = run_task("logreg", options, world_size=2, tmp_path=tmp_path)

    assert run.result["target_reached"] is True, run.result
    assert EPOCH_METRICS | {"time_to_accuracy_s", "batch_loss"} <= {p.name for p in run.points}
    assert run.series("val_accuracy")[-1] >= 0.9
    assert run.series("epoch") == [float(e) for e in range(1, run.result["epochs"] + 1)]
    # 400 samples a rank in batches of 20: 20 steps an epoch, rank 0's loss every 10th.
    assert len(run.series("batch_loss")) == 2 * run.result["epochs"]
    assert all(v > 0 for v in run.series("communication_s"))


def test_default_options_reach_the_default_target(tmp_path: Path) -> None:
    run = run_task("logreg", {}, world_size=2, tmp_path=tmp_path)

    assert run.result["target_reached"] is True, run.result
    assert run.result["epochs"] < 20
    assert run.series("val_accuracy")[-1] >= 0.83
    assert len(run.series("time_to_accuracy_s")) == 1
    assert run.series("samples_per_s")[0] > 0


@sqlite_only
def test_logreg_run_trains_to_finished_through_a_real_server(local_servers: LocalServers) -> None:
    server = local_servers.start()
    options = {**SMALL, "target_accuracy": 1.0, "max_epochs": 3}
    with server.client() as http:
        run = post_run(http, benchmark="logreg", options=options)
        assert run["benchmark"] == "logreg"
        assert run["options"]["l2"] == 1e-5  # the defaults are recorded with the run

        finished = wait_for_state(http, run["id"], "FINISHED", timeout_s=120)
        names = [f"distbench-worker-{run['id']}-{rank}" for rank in range(2)]
        assert finished["job_metadata"]["exit_codes"] == dict.fromkeys(names, 0), dump(finished)

        series = run_metric_names(http, run["id"])
        assert EPOCH_METRICS | {"batch_loss"} <= set(series), sorted(series)
        assert [float(p["value"]) for p in series["epoch"]] == [1.0, 2.0, 3.0]
        losses = [float(p["value"]) for p in series["train_loss"]]
        assert losses == sorted(losses, reverse=True), losses  # full-batch-like: it goes down
        assert "time_to_accuracy_s" not in series  # an accuracy of 1.0 is not reached


# -- files that are not LIBSVM --------------------------------------------------------------------
SECRET = "root:$6$s3cr3t-hash-do-not-echo:19000:0:99999:7:::"


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (f"{SECRET}\n", "line 1: expected a number (the label) first"),
        ("1 1:0.5\n\n-1 2:0.5 secret-token\n", "line 3, item 3: expected INDEX:VALUE"),
        ("1 1:0.5\n-1 2:s3cr3t\n", "line 2, item 2: expected a number after the ':'"),
        ("1 1:0.5\n-1 s3cr3t:1\n", "line 2, item 2: expected a whole-number feature index"),
    ],
)
def test_a_file_that_is_not_libsvm_is_described_by_line_never_quoted(
    tmp_path: Path, content: str, where: str
) -> None:
    path = tmp_path / "bad.svm"
    path.write_text(content)
    with pytest.raises(LibsvmError) as caught:
        load_libsvm(str(path), LogregOptions(data_path=str(path)))
    message = str(caught.value)
    assert message == f"{path}: not a LIBSVM-format file: {where}"
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@sqlite_only
def test_a_run_on_a_secret_file_fails_without_its_content_in_logs_or_errors(
    local_servers: LocalServers,
) -> None:
    server = local_servers.start()
    root = server.settings.run_data_root
    root.mkdir(parents=True)
    (root / "shadow").write_text(f"{SECRET}\nnobody:*:19000:0:99999:7:::\n")
    with server.client() as http:
        run = post_run(http, benchmark="logreg", options={"data_path": "shadow"}, num_workers=1)
        ended = wait_for_state(http, run["id"], "FAILED", timeout_s=120)
        logs = http.get(f"/api/runs/{run['id']}/logs").json()["logs"]
    shown = json.dumps(ended) + json.dumps(logs)
    assert "line 1: expected a number (the label) first" in shown, dump(ended)
    for fragment in ("s3cr3t", "do-not-echo", "nobody:*"):
        assert fragment not in shown
