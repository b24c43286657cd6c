"""The dashboard with queued runs: the start form's queue box queues a run behind the active
one, the run lists and pages show QUEUED in its own colour, and Abort aborts a queued run."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.api.helpers import client, get_run, start_run
from tests.conftest import RunningServer
from tests.dashboard.conftest import screenshot


def test_the_form_queues_a_run_which_shows_queued_and_can_be_aborted(
    server: RunningServer, page: Page
) -> None:
    with client(server) as http:
        active = start_run(http, name="active", num_workers=1)

    page.goto(f"{server.url}/runs")
    page.locator("#f-name").fill("waits its turn")
    page.locator("#f-queue").check()
    page.locator("#start").click()

    queued_id = active["id"] + 1
    page.wait_for_url(f"{server.url}/runs/{queued_id}")
    badge = page.locator("#run-state .state")
    expect(badge).to_have_text("QUEUED")
    expect(badge).to_have_class("state state-queued")
    # Its own colour, not the unstyled default of an unknown state.
    colour = badge.evaluate("node => getComputedStyle(node).backgroundColor")
    assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
    expect(page.locator("#abort")).to_be_visible()

    page.goto(f"{server.url}/runs")
    row = page.locator(f'tr[data-run-id="{queued_id}"]')
    expect(row).to_contain_text("QUEUED")
    expect(row).to_contain_text("queued…")
    screenshot(page, "runs-queued")

    page.goto(f"{server.url}/runs/{queued_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#abort").click()
    expect(page.locator("#run-state .state")).to_have_text("ABORTED")
    expect(page.locator("#abort")).to_be_hidden()
    with client(server) as http:
        aborted = get_run(http, queued_id)
        assert aborted["state"] == "ABORTED"
        assert aborted["started_at"] is None
        assert get_run(http, active["id"])["state"] in ("INITIALIZED", "STARTED")
