"""Fixtures for the kubernetes backend: a FAKE API server (``fake_apiserver``; no cluster runs
on these machines), and backends built the way ``distbench serve --backend kubernetes`` builds
them, reaching the fake through a kubeconfig file with the real ``kubernetes`` client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from distbench.backends.kubernetes.backend import KubernetesBackend
from distbench.settings import Settings
from tests.backends.kubernetes.fake_apiserver import FakeApiServer

IMAGE = "registry.example/distbench-worker:test"
NAMESPACE = "bench"

MakeBackend = Callable[..., KubernetesBackend]


def kubernetes_settings(cluster: FakeApiServer, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "backend": "kubernetes",
        "worker_image": IMAGE,
        "kubeconfig": cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace=NAMESPACE),
        "advertise_url": "http://127.0.0.1:9",
        "data_dir": tmp_path / "data",
        "collect_interval_s": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeApiServer]:
    """The fake API server; its kubelet makes pods Running without running anything."""
    with FakeApiServer(workdir=tmp_path / "kubelet", pullable_images={IMAGE}) as fake:
        yield fake


@pytest.fixture
def make_backend(cluster: FakeApiServer, tmp_path: Path) -> Iterator[MakeBackend]:
    built: list[KubernetesBackend] = []

    def make(**overrides: Any) -> KubernetesBackend:
        backend = KubernetesBackend(kubernetes_settings(cluster, tmp_path, **overrides))
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()
