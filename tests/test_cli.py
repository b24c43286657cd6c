"""The ``distbench`` command, run as users run it (the installed console script in a subprocess):
refusals are one line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import distbench as distbench_package
from distbench.store import schema
from tests.conftest import free_port

SCRIPT = Path(sys.executable).with_name("distbench")


def command(*args: str) -> list[str]:
    """The console script when installed beside this interpreter, else ``python -m distbench``."""
    if SCRIPT.exists():
        return [str(SCRIPT), *args]
    return [sys.executable, "-m", "distbench", *args]


def clean_env(tmp_path: Path) -> dict[str, str]:
    """The caller's environment without DISTBENCH_* settings (a token there would change what is
    tested), with data kept under ``tmp_path``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTBENCH_")}
    env["DISTBENCH_DATA_DIR"] = str(tmp_path / "data")
    return env


def distbench(
    tmp_path: Path, *args: str, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("distbench: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_serve_on_a_public_address_without_a_token_refuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'distbench.db'}"

    result = distbench(tmp_path, "serve", "--host", "0.0.0.0", "--database-url", url)

    assert_one_line_refusal(result, "0.0.0.0", "--token", "--insecure")
    assert not (tmp_path / "distbench.db").exists()


def test_db_upgrade_then_current_on_a_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'distbench.db'}"
    head = schema.head_revision()

    upgraded = distbench(tmp_path, "db", "upgrade", "--database-url", url)
    again = distbench(tmp_path, "db", "upgrade", "--database-url", url)
    after = distbench(tmp_path, "db", "current", "--database-url", url)

    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"database upgraded from empty to {head}"
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"database already at revision {head}"
    assert after.returncode == 0, after.stderr
    assert after.stdout.strip() == f"database {url}: {head}; needed: {head}"


def test_db_current_on_a_missing_file_names_it_and_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'typo' / 'distbench.db'}"

    result = distbench(tmp_path, "db", "current", "--database-url", url)

    assert_one_line_refusal(result, url, "does not exist", "distbench db upgrade")
    assert not (tmp_path / "typo").exists()


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    result = distbench(tmp_path, "--version")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"distbench {distbench_package.__version__}"


def test_bad_database_url_is_one_line(tmp_path: Path) -> None:
    result = distbench(tmp_path, "db", "upgrade", "--database-url", "mysql://nowhere/db")

    assert_one_line_refusal(result, "database_url")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_serve_refuses_an_empty_postgresql_database(tmp_path: Path, database_url: str) -> None:
    port = str(free_port())

    result = distbench(tmp_path, "serve", "--port", port, "--database-url", database_url)

    assert_one_line_refusal(result, "distbench db upgrade")


def test_serve_migrates_a_fresh_sqlite_file_and_answers(tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "fresh" / "distbench.db"
    args = ("serve", "--port", str(port), "--database-url", f"sqlite:///{database}")
    args += ("--log-level", "warning")

    with subprocess.Popen(
        command(*args),
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            health = wait_for_health(f"http://127.0.0.1:{port}/api/health", server)
        finally:
            server.terminate()
            output, _ = server.communicate(timeout=30)

    assert health.status_code == 200, output
    assert health.json()["status"] == "ok"
    assert health.json()["database"] == "ok"
    assert database.exists()
    assert "Traceback" not in output


def wait_for_health(
    url: str, server: subprocess.Popen[str], timeout_s: float = 60
) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            raise AssertionError(f"serve exited with {server.returncode}:\n{output}")
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"serve did not answer {url} within {timeout_s} s")
