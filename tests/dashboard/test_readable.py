"""What the dashboard shows a newcomer (issue 14): numbers by their unit, charts whose toolbar
leaves their title readable, the latest runs on the overview, and every page usable on a laptop
and on a phone. The screenshots land under test-artifacts/dashboard/."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.helpers import client, start_run, wait_for_state
from tests.conftest import RunningServer
from tests.dashboard.conftest import screenshot
from tests.dashboard.test_pages import post_points

LOSS = 0.13293325837820727
SIZES = {"laptop": (1400, 900), "phone": (390, 844)}


def post_result_metrics(http: httpx.Client, run_id: int) -> None:
    """A run's numbers of every unit: a rate, a loss, step times, a bus bandwidth, and a time
    to accuracy posted once, as a worker does when it reaches its target."""
    origin = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    points = []
    for step in range(3):
        date = (origin + dt.timedelta(seconds=step)).isoformat().replace("+00:00", "Z")
        meta = json.dumps({"epoch": step, "bytes": 2**20})
        for name, value in (
            ("samples_per_s", 12192.4),
            ("train_loss", LOSS),
            ("compute_s", 0.0123),
            ("communication_s", 0.003),
            ("bus_bandwidth_mbit", 1834.56),
        ):
            points.append(
                {"run_id": run_id, "name": name, "value": value, "date": date, "metadata": meta}
            )
    points.append({"run_id": run_id, "name": "time_to_accuracy_s", "value": 12.5})
    response = http.post("/api/metrics/batch", json=points)
    assert response.status_code == 201, response.text


def finished_run(server: RunningServer, http: httpx.Client, **fields: Any) -> dict[str, Any]:
    run = start_run(http, **fields)
    wait_for_state(http, run["id"], "STARTED")
    post_points(http, run["id"], range(4))
    post_result_metrics(http, run["id"])
    server.fake.finish(run["id"])
    return wait_for_state(http, run["id"], "FINISHED")


def test_the_result_shows_every_number_by_its_unit(server: RunningServer, page: Page) -> None:
    with client(server) as http:
        run = finished_run(server, http, name="units")
    page.goto(f"{server.url}/runs/{run['id']}")
    expect(page.locator("#result")).to_contain_text("final train loss")
    shown: dict[str, str] = page.eval_on_selector(
        "#result",
        """dl => Object.fromEntries([...dl.querySelectorAll("dt")].map(
            (dt) => [dt.textContent, dt.nextElementSibling.textContent]))""",
    )
    assert str(LOSS) not in str(shown), shown
    assert shown["final train loss"] == "0.1329", shown
    assert shown["samples per second"] == "12,192 samples/s", shown
    # 3 * 0.003 of 3 * (0.0123 + 0.003) seconds: a share, as a percentage.
    assert shown["communication share"] == "19.6 %", shown
    assert shown["compute"] == "36.9 ms", shown
    assert shown["bus bandwidth"] == "1.83 Gbit/s", shown
    assert shown["time to accuracy"] == "12.5 s", shown
    assert shown["target reached"] == "yes", shown
    assert shown["limits"] == "num_cpus: 1max_bandwidth_mbit: none", shown
    screenshot(page, "readable-result")


def test_a_one_point_series_is_a_number_and_no_title_sits_under_the_toolbar(
    server: RunningServer, browser: Browser
) -> None:
    with client(server) as http:
        run = finished_run(server, http, name="charts")
    for size, (width, height) in SIZES.items():
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        try:
            page.goto(f"{server.url}/runs/{run['id']}")
            single = page.locator('[data-metric="time_to_accuracy_s"]')
            expect(single).to_have_text("time_to_accuracy_s12.5 s")
            expect(single.locator(".main-svg")).to_have_count(0)
            chart = page.locator('[data-metric="train_loss"]')
            expect(chart.locator(".gtitle")).to_have_text("train_loss")
            chart.hover()
            expect(chart.locator(".modebar")).to_be_visible()
            title = chart.locator(".gtitle").bounding_box()
            toolbar = chart.locator(".modebar").bounding_box()
            assert title is not None
            assert toolbar is not None
            apart = (
                title["y"] >= toolbar["y"] + toolbar["height"]
                or title["x"] + title["width"] <= toolbar["x"]
                or toolbar["y"] >= title["y"] + title["height"]
            )
            assert apart, (size, title, toolbar)
            screenshot(page, f"readable-chart-toolbar-{size}")
        finally:
            context.close()


def test_compare_starts_each_run_at_second_zero(server: RunningServer, page: Page) -> None:
    ids = []
    with client(server) as http:
        for workers in (1, 2):
            # post_points dates its points a minute back, before the server started the run.
            ids.append(finished_run(server, http, name=f"x{workers}", num_workers=workers)["id"])
    page.goto(f"{server.url}/compare?run={ids[0]}&run={ids[1]}")
    page.wait_for_function("document.querySelector('#overlay')?.data?.length === 2")
    firsts: list[float] = page.eval_on_selector(
        "#overlay", "node => node.data.map((trace) => Math.min(...trace.x))"
    )
    assert firsts == [0, 0], firsts
    screenshot(page, "readable-compare")


def test_the_overview_between_runs_shows_the_latest_runs_and_their_results(
    server: RunningServer, page: Page
) -> None:
    page.goto(f"{server.url}/")
    expect(page.locator("#latest-empty")).to_contain_text("No runs yet")
    with client(server) as http:
        run = finished_run(server, http, name="the latest")
    page.reload()
    row = page.locator(f'#latest-runs tr[data-run-id="{run["id"]}"]')
    expect(row).to_contain_text("the latest")
    expect(row).to_contain_text("FINISHED")
    expect(row).to_contain_text("12,192 samples/s")
    expect(row).to_contain_text("bus bandwidth 1.83 Gbit/s")
    screenshot(page, "readable-overview-between-runs")


# The charts whose title runs past the chart's edge or under its legend.
CRAMPED_TITLES = """() => [...document.querySelectorAll(".js-plotly-plot")].filter((chart) => {
  const title = chart.querySelector(".gtitle");
  if (!title) return false;
  const t = title.getBoundingClientRect();
  const c = chart.getBoundingClientRect();
  const legend = chart.querySelector(".legend");
  const l = legend ? legend.getBoundingClientRect() : null;
  const under = l && l.width > 0 && !(l.top >= t.bottom || l.bottom <= t.top
    || l.left >= t.right || l.right <= t.left);
  return t.left < c.left || t.right > c.right || under;
}).map((chart) => chart.id || chart.dataset.metric || chart.dataset.chart)"""


@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_the_screen_without_sideways_scrolling(
    server: RunningServer, browser: Browser, size: str
) -> None:
    with client(server) as http:
        ended = finished_run(server, http, name="a finished run with a longer name")
        finished_run(server, http, name="another", num_workers=1)
        active = start_run(http, name="active", num_cpus=0.5, max_bandwidth=100)
        wait_for_state(http, active["id"], "STARTED")
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    pages = {
        "overview": ("/", "article.pod"),
        "runs": ("/runs", "#runs-table tbody tr"),
        "run": (f"/runs/{ended['id']}", '[data-metric="train_loss"] .main-svg'),
        "run-active": (f"/runs/{active['id']}", "#logs details"),
        "compare": ("/compare", "#compare-table tbody tr"),
    }
    overflowing = {}
    cramped: dict[str, list[str]] = {}
    try:
        for name, (path, ready) in pages.items():
            page.goto(f"{server.url}{path}")
            expect(page.locator(ready).first).to_be_visible()
            screenshot(page, f"page-{name}-{size}")
            wide: int = page.evaluate("document.documentElement.scrollWidth")
            if wide > width:
                overflowing[name] = wide
            if bad_titles := page.evaluate(CRAMPED_TITLES):
                cramped[name] = bad_titles
    finally:
        context.close()
    assert overflowing == {}, f"wider than {width} px: {overflowing}"
    assert cramped == {}, f"chart titles cut off or under a legend: {cramped}"
