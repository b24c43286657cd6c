"""One server per data directory: a second ``distbench serve`` (or ``distbench demo``) on a data
directory a server is using refuses to start, names the first, and touches nothing; the first
keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from distbench import data_lock
from tests.backends.local_helpers import LocalServer, LocalServers
from tests.conftest import free_port
from tests.test_cli import assert_one_line_refusal, command


def second_command(servers: LocalServers, *args: str) -> subprocess.CompletedProcess[str]:
    """``distbench ARGS`` on the servers' data directory, as a second operator would start it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTBENCH_")}
    env["DISTBENCH_DATA_DIR"] = str(servers.data_dir)
    return subprocess.run(
        command(*args), env=env, capture_output=True, text=True, timeout=30, check=False
    )


def assert_first_still_serves(first: LocalServer) -> None:
    assert first.alive
    assert httpx.get(f"{first.url}/api/health", timeout=5).status_code == 200


def test_second_server_on_the_data_directory_refuses_naming_the_first(
    local_servers: LocalServers, tmp_path: Path
) -> None:
    first = local_servers.start_cli()
    assert first.process is not None
    other_database = tmp_path / "other.db"
    port = free_port()

    result = second_command(
        local_servers,
        "serve",
        "--port",
        str(port),
        "--database-url",
        f"sqlite:///{other_database}",
    )

    assert_one_line_refusal(
        result,
        f"pid {first.process.pid}, port {first.settings.port}",
        str(local_servers.data_dir),
    )
    # Refused before touching anything: no database created, nothing listening.
    assert not other_database.exists()
    try:
        httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
        raise AssertionError("the refused server answers")
    except httpx.ConnectError:
        pass
    assert_first_still_serves(first)


def test_demo_beside_a_server_on_its_data_directory_refuses(
    local_servers: LocalServers, tmp_path: Path
) -> None:
    first = local_servers.start_cli()
    assert first.process is not None

    result = second_command(
        local_servers,
        "demo",
        "--exit",
        "--port",
        str(free_port()),
        "--database-url",
        f"sqlite:///{tmp_path / 'demo.db'}",
    )

    assert_one_line_refusal(result, f"pid {first.process.pid}, port {first.settings.port}")
    assert_first_still_serves(first)


def test_a_killed_servers_lock_does_not_keep_its_restart_out(local_servers: LocalServers) -> None:
    # The kernel releases a killed server's lock: its restart is not kept out.
    first = local_servers.start_cli()
    first.kill()
    second = local_servers.start_cli(port=first.settings.port)
    assert_first_still_serves(second)


def lock_from_another_process(data_dir: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from pathlib import Path; from distbench import data_lock\n"
        "try:\n"
        f"    data_lock.acquire(Path({str(data_dir)!r}), port=1)\n"
        "except data_lock.DataDirInUse as exc:\n"
        "    sys.exit(str(exc))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )


def test_the_lock_is_held_until_its_last_release(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_lock.acquire(data_dir, port=1234)
    data_lock.acquire(data_dir, port=1234)  # the same process again: the CLI, then the app
    try:
        refused = lock_from_another_process(data_dir)
        assert refused.returncode != 0
        assert f"pid {os.getpid()}, port 1234" in refused.stderr
        data_lock.release(data_dir)
        assert lock_from_another_process(data_dir).returncode != 0
    finally:
        data_lock.release(data_dir)
    assert lock_from_another_process(data_dir).returncode == 0
