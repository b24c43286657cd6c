"""Backends run the workers of a run. ``create_backend`` picks one by name."""

from __future__ import annotations

from distbench.backends.base import ClusterBackend, LaunchReport, PodInfo, RunStatus
from distbench.settings import Settings

__all__ = ["ClusterBackend", "LaunchReport", "PodInfo", "RunStatus", "create_backend"]


def create_backend(settings: Settings) -> ClusterBackend:
    """The backend ``settings.backend`` names. Tests pass a ``FakeBackend``
    (tests/fake_backend.py) to ``create_app`` directly; users never get the fake."""
    if settings.backend == "kubernetes":
        # Imported here: the kubernetes client is an optional extra a laptop install lacks.
        from distbench.backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(settings)
    from distbench.backends.local.backend import LocalBackend

    return LocalBackend(settings)
