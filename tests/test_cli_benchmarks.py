"""``distbench benchmarks`` and ``distbench run --command``, run as users run them (the console
script in a subprocess) against a fake-backend server."""

from __future__ import annotations

from pathlib import Path

import httpx

from distbench.cli.runs import command_and_dir
from tests.conftest import RunningServer, StartServer
from tests.test_cli import assert_one_line_refusal, distbench

TOKEN = "cli-command-token"


def test_benchmarks_lists_each_task_its_origin_and_options(
    tmp_path: Path, server: RunningServer
) -> None:
    result = distbench(tmp_path, "benchmarks", "--url", server.url)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "digits — built-in, from distbench 0.1.0" in out
    assert "blobs — plugin, from distbench-example-plugin 0.1.0" in out
    # Each option with its type and default.
    digits = out[out.index("digits —") :]
    assert "target_accuracy" in digits
    assert "0.96" in digits
    assert "sizes_bytes" in out  # allreduce's list option


def test_run_command_sends_the_argv_and_an_absolute_working_dir(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN, allow_commands=True)
    workdir = tmp_path / "project"
    workdir.mkdir()
    result = distbench(
        tmp_path,
        "run",
        "--url",
        server.url,
        "--token",
        TOKEN,
        "--command",
        "python train.py --lr 0.1 --name 'two words'",
        "--workdir",
        str(workdir),
        "--workers",
        "2",
        "--bandwidth",
        "100",
    )
    assert result.returncode == 0, result.stderr
    run = httpx.get(f"{server.url}/api/runs/").json()[0]
    assert run["command"] == ["python", "train.py", "--lr", "0.1", "--name", "two words"]
    assert run["working_dir"] == str(workdir)
    assert run["max_bandwidth"] == 100
    assert run["name"] == "train.py x2, 1 CPU, 100 Mbit/s"


def test_run_command_on_a_server_that_does_not_allow_it_is_one_line(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN)
    result = distbench(
        tmp_path, "run", "--url", server.url, "--token", TOKEN, "--command", "python train.py"
    )
    assert_one_line_refusal(result, "--allow-commands")


def test_command_and_benchmark_together_are_refused(tmp_path: Path) -> None:
    result = distbench(tmp_path, "run", "--benchmark", "digits", "--command", "python train.py")
    assert_one_line_refusal(result, "not both")
    result = distbench(tmp_path, "run", "--workdir", str(tmp_path))
    assert_one_line_refusal(result, "--workdir goes with --command")
    result = distbench(tmp_path, "run", "--command", "python 'unclosed")
    assert_one_line_refusal(result, "--command")


def test_the_working_dir_defaults_to_where_the_command_is_typed() -> None:
    argv, workdir = command_and_dir("python train.py", None, None)
    assert argv == ["python", "train.py"]
    assert workdir == str(Path.cwd().resolve())
    _, relative = command_and_dir("python train.py", Path("."), None)
    assert relative == str(Path.cwd().resolve())
