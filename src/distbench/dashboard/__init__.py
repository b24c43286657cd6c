"""The dashboard: HTML pages at ``/``, ``/runs``, ``/runs/{id}`` and ``/compare`` that read the
API from the browser, with Plotly.js served from the installed ``plotly`` package (no CDN, so it
works offline). The pages are not API: they are left out of the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from distbench.dashboard.pages import PAGE_PATHS, STATIC_PATH, router

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Serve the pages and their static files (``/static/...``) beside the API."""
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")


__all__ = ["PAGE_PATHS", "STATIC_PATH", "install", "router"]
