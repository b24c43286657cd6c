"""GPU runs on the local backend: refused with the reason where the GPUs are missing, and given
one GPU per rank and NCCL settings where they are there. (These machines have no GPU; the
launch itself is checked on a GPU machine, not here.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from distbench.backends.local import backend as local
from distbench.backends.local.backend import LocalBackend
from distbench.backends.local.launch import gpu_environment
from distbench.errors import InvalidInput, LimitUnsupported
from distbench.settings import Settings
from distbench.store.records import NewRun
from distbench.worker.env import WorkerEnvError, read_env


def _new(**fields: object) -> NewRun:
    values: dict[str, object] = {
        "name": "gpu run",
        "num_workers": 2,
        "num_cpus": 1.0,
        "max_bandwidth": None,
        "benchmark": "digits",
        "backend": "nccl",
        "gpu": True,
    }
    values.update(fields)
    return NewRun(**values)  # type: ignore[arg-type]


@pytest.fixture
def backend(tmp_path: object) -> LocalBackend:
    settings = Settings(database_url="sqlite://", data_dir=tmp_path, warm_launcher=False)  # type: ignore[arg-type]
    backend = LocalBackend(settings)
    yield backend  # type: ignore[misc]
    backend.close()


def test_gpu_run_without_gpus_is_refused(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "gpu_count", lambda: 0)
    with pytest.raises(LimitUnsupported, match="has none"):
        backend.check(_new())


def test_more_gpu_workers_than_gpus_is_refused(
    backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "gpu_count", lambda: 1)
    with pytest.raises(LimitUnsupported, match="2 GPU workers need 2 GPUs"):
        backend.check(_new())
    monkeypatch.setattr(local, "gpu_count", lambda: 2)
    backend.check(_new())  # enough GPUs: accepted
    with pytest.raises(InvalidInput, match="mpi"):
        backend.check(_new(backend="mpi"))


def test_gpus_are_counted_from_the_driver_else_from_device_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc, dev = tmp_path / "gpus", tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-modeset", "nvidia-caps"):
        (dev / name).touch()
    monkeypatch.setattr(local, "NVIDIA_PROC_GPUS", proc)
    monkeypatch.setattr(local, "DEVICE_DIR", dev)
    assert local.gpu_count() == 2  # no /proc entries (a sandbox): the device files
    proc.mkdir()
    assert local.gpu_count() == 2  # an empty /proc folder says nothing either
    for bus in ("0000:17:00.0", "0000:65:00.0", "0000:ca:00.0"):
        (proc / bus).mkdir()
    assert local.gpu_count() == 3  # the driver's own list wins
    monkeypatch.setattr(local, "NVIDIA_PROC_GPUS", tmp_path / "none")
    monkeypatch.setattr(local, "DEVICE_DIR", tmp_path / "none")
    assert local.gpu_count() == 0


def test_nccl_without_gpu_is_refused(backend: LocalBackend) -> None:
    with pytest.raises(InvalidInput, match="nccl"):
        backend.check(_new(gpu=False))


def test_each_rank_gets_its_gpu_and_a_cap_disables_nccls_direct_paths() -> None:
    free = gpu_environment(1, namespaced=True, capped=False)
    assert free == {
        "CUDA_VISIBLE_DEVICES": "1",
        "NCCL_SOCKET_IFNAME": "eth0",
    }
    capped = gpu_environment(0, namespaced=False, capped=True)
    assert capped["NCCL_SOCKET_IFNAME"] == "lo"
    assert capped["NCCL_P2P_DISABLE"] == capped["NCCL_SHM_DISABLE"] == "1"


def test_worker_device_is_checked() -> None:
    base = {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert read_env(base).device == "cpu"
    assert read_env({**base, "DISTBENCH_DEVICE": "cuda"}).device == "cuda"
    with pytest.raises(WorkerEnvError, match="DISTBENCH_DEVICE='tpu'"):
        read_env({**base, "DISTBENCH_DEVICE": "tpu"})
