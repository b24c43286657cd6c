"""Reaching the cluster: the official client, imported only when the kubernetes backend is
built (a laptop install has no ``kubernetes`` package), configured from a kubeconfig or the
server pod's service account; and the cluster's errors in words."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from distbench.errors import BackendUnavailable
from distbench.settings import Settings

IN_CLUSTER_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def import_client() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        raise BackendUnavailable(
            "backend=kubernetes needs the kubernetes client: pip install 'distbench[kubernetes]'"
        ) from exc
    return kubernetes


def api_client(kubernetes: Any, settings: Settings) -> Any:
    """A client configured from ``settings.kubeconfig``, else in-cluster, else ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    try:
        if settings.kubeconfig is not None:
            kubernetes.config.load_kube_config(
                config_file=str(settings.kubeconfig), client_configuration=configuration
            )
        else:
            try:
                kubernetes.config.load_incluster_config(client_configuration=configuration)
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config(client_configuration=configuration)
    except (kubernetes.config.ConfigException, OSError) as exc:
        raise BackendUnavailable(
            f"no Kubernetes configuration: {exc} (run inside a cluster, or set "
            "DISTBENCH_KUBECONFIG / serve --kubeconfig)"
        ) from exc
    return kubernetes.client.ApiClient(configuration)


def default_namespace(kubernetes: Any, settings: Settings) -> str:
    """The kubeconfig context's namespace, else the server pod's own, else ``default``."""
    if settings.kubeconfig is not None or not IN_CLUSTER_NAMESPACE.exists():
        with contextlib.suppress(Exception):
            config_file = str(settings.kubeconfig) if settings.kubeconfig else None
            _, active = kubernetes.config.list_kube_config_contexts(config_file=config_file)
            namespace = active.get("context", {}).get("namespace")
            if namespace:
                return str(namespace)
        return "default"
    return IN_CLUSTER_NAMESPACE.read_text().strip() or "default"


def transport_errors() -> tuple[type[BaseException], ...]:
    import urllib3.exceptions

    return (urllib3.exceptions.HTTPError, OSError)


def api_message(exc: BaseException) -> str:
    """The Status message the API server sent, else the exception's own text."""
    body = getattr(exc, "body", None)
    if body:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            status = json.loads(body)
            if status.get("message"):
                return str(status["message"])
    reason = getattr(exc, "reason", None)
    return str(reason or exc)
