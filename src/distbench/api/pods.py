"""GET /api/pods/: the worker pods that exist now."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from distbench.api.deps import OrchestratorDep
from distbench.api.encode import JSONBody
from distbench.api.routing import errors, route
from distbench.api.schemas import PodPublic

router = APIRouter(tags=["pods"])


def labels_text(labels: Mapping[str, str]) -> str:
    """Labels as the seed shows them: a Python dict literal, keys sorted as Kubernetes does."""
    return repr(dict(sorted(labels.items())))


@route(router, "GET", "/pods/", response_model=list[PodPublic], responses=errors(503))
async def list_pods(orchestrator: OrchestratorDep) -> Response:
    """All worker pods in the cluster (or on this machine), with their phase and address."""
    pods = await run_in_threadpool(orchestrator.list_pods)
    return JSONBody(
        [
            {"name": pod.name, "labels": labels_text(pod.labels), "phase": pod.phase, "ip": pod.ip}
            for pod in pods
        ]
    )
