"""``resnet20-cifar10``: the model, CIFAR-10's own file format, and real runs on a tiny data set
written in that format (so the real loading code runs; the real data set is 170 MB)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from distbench.benchmarks import cifar10
from distbench.benchmarks.resnet20 import ResNet20, augment, learning_rate
from distbench.benchmarks.resnet20_options import Resnet20Options
from tests.backends.local_helpers import LocalServers, post_run, wait_for
from tests.benchmarks.cifar_files import IMAGES_PER_BATCH, crafted_batches, write_tiny_cifar10


def test_resnet20_has_the_papers_size_and_shape() -> None:
    model = ResNet20()
    assert sum(p.numel() for p in model.parameters()) == 269_722  # "0.27 M"
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_augment_keeps_shapes_and_follows_its_seed() -> None:
    images = torch.randn(8, 3, 32, 32)
    first = augment(images, torch.Generator().manual_seed(1))
    again = augment(images, torch.Generator().manual_seed(1))
    other = augment(images, torch.Generator().manual_seed(2))
    assert first.shape == images.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_learning_rate_warms_up_to_the_scaled_rate_then_decays() -> None:
    options = Resnet20Options(learning_rate=0.1, warmup_epochs=5, max_epochs=100)
    assert learning_rate(options, 4, 0) == pytest.approx(0.1)
    assert learning_rate(options, 4, 2.5) == pytest.approx(0.25)
    assert learning_rate(options, 4, 10) == pytest.approx(0.4)
    assert learning_rate(options, 4, 60) == pytest.approx(0.04)
    assert learning_rate(options, 4, 80) == pytest.approx(0.004)


def test_cifar10_files_are_read_in_their_own_format(tmp_path: Path) -> None:
    folder = write_tiny_cifar10(tmp_path)
    assert cifar10.locate(tmp_path, allow_download=False) == folder
    train_x, train_y, test_x, _ = cifar10.load(folder)
    assert train_x.shape == (5 * IMAGES_PER_BATCH, 3, 32, 32)
    assert test_x.shape == (IMAGES_PER_BATCH, 3, 32, 32)
    assert train_y.dtype == torch.int64
    assert int(train_y.max()) < 10
    # Normalised with CIFAR-10's channel statistics: uniform bytes land around (0.5-m)/s.
    assert abs(float(train_x[:, 0].mean()) - (0.5 - cifar10.MEAN[0]) / cifar10.STD[0]) < 0.1


def test_missing_cifar10_without_download_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(cifar10.DatasetMissing, match=str(tmp_path)):
        cifar10.locate(tmp_path, allow_download=False)


def _ended(http, run_id: int) -> dict:  # type: ignore[no-untyped-def]
    def check() -> dict | None:  # type: ignore[type-arg]
        run = http.get(f"/api/runs/{run_id}/").json()
        return run if run["state"] in ("FINISHED", "FAILED", "ABORTED") else None

    return wait_for(check, what=f"run {run_id} to end", timeout_s=120)


def test_two_workers_train_on_a_cifar10_folder(local_servers: LocalServers) -> None:
    server = local_servers.start()
    write_tiny_cifar10(server.settings.run_data_root / "cifar")
    with server.client() as http:
        run = post_run(
            http,
            benchmark="resnet20-cifar10",
            options={
                "data_dir": "cifar",  # relative paths are taken from the data root
                "download": False,
                "max_epochs": 2,
                "batch_size": 8,
                "warmup_epochs": 1,
                "report_every_steps": 2,
            },
        )
        ended = _ended(http, run["id"])
        assert ended["state"] == "FINISHED", ended["job_metadata"]
        series = http.get(f"/api/metrics/{run['id']}/", params={"metric_type": "run"}).json()
    assert [float(p["value"]) for p in series["epoch"]] == [1.0, 2.0]
    assert len(series["val_accuracy"]) == 2
    assert float(series["samples_per_s"][-1]["value"]) > 0
    assert float(series["communication_s"][-1]["value"]) > 0
    assert "batch_loss" in series
    result = ended["job_metadata"]["result"]
    assert result["target_reached"] is False  # 80 % is not reached in two tiny epochs


def test_a_missing_data_set_fails_the_run_saying_where(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = post_run(
            http,
            benchmark="resnet20-cifar10",
            options={"data_dir": "nothing", "download": False},
        )
        assert run["options"]["data_dir"] == str(
            server.settings.run_data_root.resolve() / "nothing"
        )
        ended = _ended(http, run["id"])
    assert ended["state"] == "FAILED"
    tails = "\n".join(ended["job_metadata"]["worker_log_tails"].values())
    assert "CIFAR-10 is not in" in tails


def test_synthetic_data_runs_for_throughput(local_servers: LocalServers) -> None:
    server = local_servers.start()
    with server.client() as http:
        run = post_run(
            http,
            benchmark="resnet20-cifar10",
            options={
                "dataset": "synthetic",
                "synthetic_samples": 64,
                "max_epochs": 1,
                "batch_size": 16,
            },
        )
        ended = _ended(http, run["id"])
        assert ended["state"] == "FINISHED", ended["job_metadata"]
        series = http.get(
            f"/api/metrics/{run['id']}/",
            params={"metric_type": "run", "metric_filter": "samples_per_s"},
        ).json()
    assert float(series["samples_per_s"][0]["value"]) > 0


def test_a_crafted_batch_fails_the_run_and_runs_nothing(
    local_servers: LocalServers, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    server = local_servers.start()
    folder = write_tiny_cifar10(server.settings.run_data_root / "cifar")
    (folder / "data_batch_2").write_bytes(crafted_batches(marker)["os.system"])
    with server.client() as http:
        run = post_run(
            http,
            benchmark="resnet20-cifar10",
            options={"data_dir": "cifar", "download": False, "max_epochs": 1},
            num_workers=1,
        )
        ended = _ended(http, run["id"])
    assert ended["state"] == "FAILED"
    tails = "\n".join(ended["job_metadata"]["worker_log_tails"].values())
    assert "data_batch_2 is not a CIFAR-10 batch" in tails
    assert not marker.exists()
