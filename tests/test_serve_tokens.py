"""``distbench serve`` and its token, as users start it: an empty or short token is refused at
start, the token can come from a file (and so stays out of ``ps``), reads can be put behind it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.polling import wait_for
from tests.test_cli import assert_one_line_refusal, clean_env, command

GOOD_TOKEN = "token-from-a-file-0123456789"


def serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    url = f"sqlite:///{tmp_path / 'distbench.db'}"
    return subprocess.run(
        command("serve", "--database-url", url, *args),
        env={**clean_env(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("given", ["", "   ", "zq9x-short"], ids=["empty", "blank", "short"])
def test_an_empty_or_short_token_is_refused_at_start(tmp_path: Path, given: str) -> None:
    result = serve(tmp_path, "--host", "0.0.0.0", env={"DISTBENCH_TOKEN": given})

    assert result.returncode == 2
    assert_one_line_refusal(result, "token", "16", "secrets.token_urlsafe(32)")
    if given.strip():
        assert given not in result.stderr, "the refused token was echoed"
    assert not (tmp_path / "distbench.db").exists()


def test_an_unreadable_token_file_is_refused_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"

    result = serve(tmp_path, "--token-file", str(missing))

    assert result.returncode == 2
    assert_one_line_refusal(result, f"cannot read the token file {missing}", "No such file")


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(GOOD_TOKEN)

    result = serve(tmp_path, "--token-file", str(token_file), env={"DISTBENCH_TOKEN": GOOD_TOKEN})

    assert_one_line_refusal(result, "give the token once")


def test_protect_reads_without_a_token_is_refused(tmp_path: Path) -> None:
    result = serve(tmp_path, "--protect-reads")

    assert_one_line_refusal(result, "protect_reads=true needs a token")


def test_the_token_file_guards_writes_and_protected_reads_and_stays_out_of_ps(
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"\n  {GOOD_TOKEN}  \n")  # as an editor or `echo` leaves it
    token_file.chmod(0o600)
    port = free_port()
    url = f"sqlite:///{tmp_path / 'distbench.db'}"
    env = {**clean_env(tmp_path), "DISTBENCH_WARM_LAUNCHER": "false"}
    args = ["--port", str(port), "--database-url", url, "--log-level", "warning"]
    process = subprocess.Popen(
        command("serve", *args, "--token-file", str(token_file), "--protect-reads"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answering() -> bool:
            assert process.poll() is None, "distbench serve exited"
            try:
                return httpx.get(f"{base}/api/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answering, what="distbench serve to answer", timeout_s=60)
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert GOOD_TOKEN.encode() not in cmdline

        with httpx.Client(base_url=base, timeout=30) as anonymous:
            assert anonymous.get("/api/runs/").status_code == 401
            assert anonymous.get("/metrics").status_code == 401
            started = anonymous.post("/api/runs/", json={"name": "x", "num_workers": 1})
            assert started.status_code == 401
        headers = {"Authorization": f"Bearer {GOOD_TOKEN}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as admin:
            assert admin.get("/api/runs/").json() == []
            assert admin.get("/metrics").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
