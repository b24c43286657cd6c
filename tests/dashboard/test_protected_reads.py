"""The dashboard on a server started with --protect-reads: its pages hold no data and stay open;
their reads ask for the server token, which the tab keeps in sessionStorage and sends as a
header, exports included."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.api.helpers import client, start_run, wait_for_state
from tests.conftest import StartServer
from tests.dashboard.conftest import screenshot
from tests.dashboard.test_pages import post_points

TOKEN = "dashboard-reads-token-0123"


def test_the_dashboard_asks_for_the_token_and_keeps_it_in_the_tab(
    start_server: StartServer, page: Page
) -> None:
    server = start_server(token=TOKEN, protect_reads=True)
    with client(server, TOKEN) as admin:
        run_id = start_run(admin, name="guarded reads")["id"]
        wait_for_state(admin, run_id, "STARTED")
        post_points(admin, run_id, range(3))
    row = page.locator(f'tr[data-run-id="{run_id}"]')

    page.goto(f"{server.url}/runs")
    prompt = page.locator("#token-prompt")
    expect(prompt).to_contain_text("needs a token for reads")
    expect(row).to_have_count(0)
    screenshot(page, "token-prompt")
    page.locator("#token-prompt-input").fill("not-the-server-token")
    page.locator("#token-prompt button").click()
    expect(prompt).to_contain_text("not valid")
    page.locator("#token-prompt-input").fill(TOKEN)
    page.locator("#token-prompt button").click()

    expect(row).to_contain_text("guarded reads")
    expect(prompt).to_have_count(0)
    assert page.evaluate("sessionStorage.getItem('distbench-token')") == TOKEN
    assert page.evaluate("localStorage.getItem('distbench-token')") is None

    # The run page charts with it, and its exports download with it.
    page.goto(f"{server.url}/runs/{run_id}")
    chart = '[data-metric="val_accuracy"]'
    page.wait_for_function(f"document.querySelector('{chart}')?.data?.[0]?.x?.length === 3")
    with page.expect_download() as download:
        page.locator("#export-csv").click()
    assert "val_accuracy" in Path(download.value.path()).read_text()
    expect(prompt).to_have_count(0)

    # Another tab has not got it.
    other = page.context.new_page()
    other.goto(f"{server.url}/runs")
    expect(other.locator("#token-prompt")).to_contain_text("needs a token for reads")
    other.close()
