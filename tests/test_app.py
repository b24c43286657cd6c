"""The database is prepared once per start: by whoever starts the server (``distbench serve``,
``demo``), never again by the app's lifespan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from distbench.app import create_app
from distbench.cli import demo
from distbench.settings import Settings
from distbench.store import schema
from tests.conftest import StartServer, free_port
from tests.fake_backend import FakeBackend


def count_preparations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every schema check from now on (``prepare_database`` makes one per call)."""
    calls: list[object] = []
    real = schema.ensure_current

    def counted(engine: Any, **kwargs: Any) -> None:
        calls.append(engine)
        real(engine, **kwargs)

    monkeypatch.setattr(schema, "ensure_current", counted)
    return calls


def test_the_lifespan_does_not_prepare_the_database_again(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_preparations(monkeypatch)
    server = start_server()
    assert httpx.get(f"{server.url}/api/health", timeout=10).status_code == 200
    assert calls == []


def test_demo_prepares_the_database_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_preparations(monkeypatch)

    def with_fake(settings: Settings) -> FastAPI:
        """The demo's own server, on the fake backend: its workers are not tested here."""
        return create_app(settings, backend=FakeBackend())

    monkeypatch.setattr(demo, "create_app", with_fake)
    settings = Settings(
        port=free_port(),
        database_url=f"sqlite:///{tmp_path / 'distbench.db'}",
        data_dir=tmp_path / "data",
    )
    running = demo.start_server(settings)
    try:
        health = httpx.get(f"{settings.advertised_url}/api/health", timeout=10)
        assert health.status_code == 200, health.text
    finally:
        running.stop()
    assert len(calls) == 1
