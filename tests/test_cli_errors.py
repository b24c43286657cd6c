"""The CLI's refusals name the CLI's way out (an option, a command), not the API's HTTP one, run
as users run them (the console script in a subprocess) against a fake-backend server."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.api.helpers import start_run
from tests.conftest import RunningServer, StartServer, free_port
from tests.test_cli import assert_one_line_refusal, distbench

TOKEN = "cli-errors-token-0123456789"


def test_a_missing_token_names_the_option_and_the_variable(
    tmp_path: Path, start_server: StartServer
) -> None:
    server = start_server(token=TOKEN)

    result = distbench(tmp_path, "run", "--url", server.url, "--workers", "1")

    assert_one_line_refusal(result, "--token", "DISTBENCH_TOKEN")
    assert "Authorization" not in result.stderr


def test_a_wrong_token_names_where_it_came_from(tmp_path: Path, start_server: StartServer) -> None:
    server = start_server(token=TOKEN)

    result = distbench(tmp_path, "run", "--url", server.url, "--token", "x" * 20)

    assert_one_line_refusal(result, "not valid", "--token", "DISTBENCH_TOKEN")


def test_an_active_run_is_aborted_with_the_cli_not_with_http(
    tmp_path: Path, server: RunningServer
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        active = start_run(http, num_workers=1)

    result = distbench(tmp_path, "run", "--url", server.url, "--workers", "1")

    assert_one_line_refusal(result, f"distbench abort {active['id']}", "--queue")
    assert "DELETE" not in result.stderr


def test_an_unreachable_server_suggests_serve_and_shows_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = distbench(tmp_path, "runs", "--url", url)

    assert_one_line_refusal(result, url, "distbench serve", "--url")


def test_the_api_address_the_demo_prints_works_as_url(
    tmp_path: Path, server: RunningServer
) -> None:
    for url in (f"{server.url}/api/", f"{server.url}/api"):
        result = distbench(tmp_path, "runs", "--url", url)

        assert result.returncode == 0, result.stderr
        assert "no runs yet" in result.stdout


def test_a_url_with_another_path_says_what_url_takes(tmp_path: Path, server: RunningServer) -> None:
    result = distbench(tmp_path, "runs", "--url", f"{server.url}/dashboard")

    assert_one_line_refusal(result, f"{server.url}/dashboard", "--url")
