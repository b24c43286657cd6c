"""Prometheus instruments of one app (a registry per app, so tests can build many apps), and the
ASGI middleware that counts and times requests by route template."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Observability:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        # The ``*_created`` series double the output and no dashboard reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "distbench_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "distbench_http_request_duration_seconds",
            "Time to answer HTTP requests, by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.points_ingested = Counter(
            "distbench_metric_points_ingested",
            "Metric points stored, by kind (run or pod).",
            ["kind"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


def route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. ``/api/runs/{run_id}/``.

    FastAPI now includes routers lazily: ``scope["route"]`` is the route as its own router
    declared it, without the prefixes of the routers that include it (``/runs/{run_id}/``, and
    ``/metrics`` for both ``/api/metrics`` and Prometheus' ``/metrics``). The full template is on
    the route context FastAPI records in the scope; older FastAPI put it on the route itself.
    """
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        path = getattr(fastapi_scope.get("effective_route_context"), "path", None)
        if isinstance(path, str) and path:
            return path
    route_path = getattr(scope.get("route"), "path", None)
    return route_path if isinstance(route_path, str) and route_path else "unmatched"


class ObservabilityMiddleware:
    """Counts and times every HTTP request and adds ``Vary: Accept`` (docs/api.md) to answers."""

    def __init__(self, app: ASGIApp, observability: Observability) -> None:
        self.app = app
        self.observability = observability

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_vary(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers: list[Any] = list(message.get("headers", []))
                headers.append((b"vary", b"Accept"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_vary)
        finally:
            # The template, not the raw path: one series per endpoint, not one per run id.
            template = route_template(scope)
            method = scope["method"]
            self.observability.requests.labels(method, template, str(status)).inc()
            self.observability.latency.labels(method, template).observe(
                time.perf_counter() - started
            )
