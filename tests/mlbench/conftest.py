"""MLBench's own client and CLI (mlbench-core 3.0.0, unmodified) against a real ``distbench serve``.

mlbench-core 3.0.0 does not install beside torch 2.13 on Python 3.11 (it pins torch 1.7, numpy
1.19, grpcio 1.31), so its wheel is downloaded once (``pip download --no-deps``, checked against
its SHA-256) into the virtual environment (``<venv>/mlbench-core-3.0.0/``) and its modules are
loaded from there by path. Nothing of MLBench's code is in this repository or replaced here.

What its modules import is installed by the test extras (``requests``, ``kubernetes``, ``click``,
``boto3``, ``google-cloud-container``, ``docker``, ``GitPython``, ``supermutes``, ...). One
workaround, and only one: the package's ``__init__.py`` is not run. It imports MLBench's
training code (torch 1.7 APIs, tensorpack, lmdb), which neither the client nor the CLI uses;
``mlbench_core`` is registered as a package whose path is the wheel's folder and whose
``__version__`` (the CLI's ``--version``) is read from that file.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import subprocess
import sys
import tempfile
import types
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.backends.local_helpers import LocalServer, LocalServers
from tests.backends.local_helpers import sqlite_local_servers as sqlite_local_servers

WHEEL = "mlbench_core-3.0.0-py3-none-any.whl"
WHEEL_SHA256 = "89d9af1825ceccf5dd4a4cbed76ba0e0a9e3e171cfdc04e9ba0b0de98443b80c"
TOKEN = "mlbench-drop-in-token-0123456789"


def _cache_dir() -> Path:
    """Beside the virtual environment (ignored by git, kept between runs), else a temp dir."""
    for base in (Path(sys.prefix), Path(tempfile.gettempdir())):
        folder = base / "mlbench-core-3.0.0"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            return folder
    raise RuntimeError("no writable folder for mlbench-core's wheel")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def mlbench_source() -> Path:
    """The folder holding ``mlbench_core/`` unpacked from the downloaded wheel."""
    folder = _cache_dir()
    wheel = folder / WHEEL
    if not wheel.exists() or _sha256(wheel) != WHEEL_SHA256:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
             "mlbench-core==3.0.0", "-d", str(folder)],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0 or not wheel.exists():
            pytest.fail(f"pip download mlbench-core==3.0.0 failed: {result.stderr[-2000:]}")
        if _sha256(wheel) != WHEEL_SHA256:
            pytest.fail(f"{wheel} is not mlbench-core 3.0.0's wheel (SHA-256 differs)")
    source = folder / "src"
    if not (source / "mlbench_core" / "api.py").exists():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(source)
    return source


@dataclass(frozen=True)
class MLBench:
    api: types.ModuleType  # mlbench_core.api: ApiClient, MLBENCH_IMAGES, MLBENCH_BACKENDS
    cli: types.ModuleType  # mlbench_core.cli.cli: the ``mlbench`` command (cli_group)


@pytest.fixture(scope="session")
def mlbench() -> MLBench:
    package_dir = mlbench_source() / "mlbench_core"
    package = types.ModuleType("mlbench_core")
    package.__path__ = [str(package_dir)]
    init_text = (package_dir / "__init__.py").read_text()
    version = re.search(r'__version__ = "([^"]+)"', init_text)
    assert version is not None
    package.__version__ = version.group(1)  # type: ignore[attr-defined]
    sys.modules["mlbench_core"] = package
    api = importlib.import_module("mlbench_core.api")
    with warnings.catch_warnings():
        # cli.py line 484 holds "\K" in a plain string literal: a compile-time warning in
        # MLBench's code, harmless, and an error under this suite's warnings-as-errors.
        warnings.filterwarnings("ignore", "invalid escape sequence", DeprecationWarning)
        cli = importlib.import_module("mlbench_core.cli.cli")
    return MLBench(api=api, cli=cli)


@dataclass
class Dashboard:
    """A ``distbench serve`` and the ``url`` MLBench's client and CLI take (``host:port``, with
    ``user:TOKEN@`` in front when the server has a token: requests sends it as Basic auth)."""

    server: LocalServer
    url: str
    token: str | None

    def client(self, mlbench: MLBench, url: str | None = None) -> Any:
        return mlbench.api.ApiClient(in_cluster=False, url=url or self.url, load_config=False)


@pytest.fixture
def serve(sqlite_local_servers: LocalServers) -> Any:
    """Start ``distbench serve`` (real local backend) as an MLBench user would point their
    client at it: ``serve(token=...)``. Runs queue by default (MLBench's client cannot ask)."""

    def start(token: str | None = None) -> Dashboard:
        env = {"DISTBENCH_QUEUE_RUNS": "true"}
        if token is not None:
            env["DISTBENCH_TOKEN"] = token
        server = sqlite_local_servers.start_cli(env=env)
        address = server.url.removeprefix("http://")
        url = address if token is None else f"mlbench:{token}@{address}"
        return Dashboard(server=server, url=url, token=token)

    return start


@pytest.fixture(params=[None, TOKEN], ids=["no-token", "token"])
def dashboard(request: pytest.FixtureRequest, serve: Any) -> Dashboard:
    """A server without a token, then one with a token (the client sends it as Basic auth)."""
    started: Dashboard = serve(token=request.param)
    return started


@pytest.fixture
def mlbench_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME of its own: the CLI keeps its last answers in ~/.local/share/mlbench and reads
    its cluster config there (none, so it uses --dashboard-url)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return home
