"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real server:
the fake backend for the form, validation, 409, abort and compare flows; real workers for one
run started from the form. Every test saves screenshots under test-artifacts/dashboard/."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.api.helpers import client, start_run, wait_for_state
from tests.backends.local_helpers import ENDLESS, LocalServers, requires_root
from tests.conftest import RunningServer
from tests.dashboard.conftest import screenshot


def post_points(http: httpx.Client, run_id: int, epochs: range, *, start_s: float = 0) -> None:
    """Accuracy and loss for each epoch, one second of (fake) training apart."""
    origin = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
    points = []
    for epoch in epochs:
        date = (origin + dt.timedelta(seconds=start_s + epoch)).isoformat().replace("+00:00", "Z")
        meta = json.dumps({"epoch": epoch})
        points.append(
            {
                "run_id": run_id,
                "name": "val_accuracy",
                "value": 1 - 0.5 / (epoch + 1),
                "date": date,
                "metadata": meta,
            }
        )
        points.append(
            {
                "run_id": run_id,
                "name": "train_loss",
                "value": 2 / (epoch + 1),
                "date": date,
                "metadata": meta,
            }
        )
    response = http.post("/api/metrics/batch", json=points)
    assert response.status_code == 201, response.text


def trace_length(page: Page, selector: str, trace: int = 0) -> int:
    length: int = page.eval_on_selector(
        selector, "(node, i) => (node.data && node.data[i] ? node.data[i].x.length : 0)", trace
    )
    return length


def test_runs_page_shows_the_empty_state_and_the_apis_validation_messages(
    server: RunningServer, page: Page
) -> None:
    page.goto(f"{server.url}/runs")
    expect(page.locator("#runs-empty")).to_contain_text("No runs yet")
    # The built-in tasks and the example plugin installed into the test environment.
    expect(page.locator("#f-benchmark option")).to_have_count(5)
    expect(page.locator("#f-benchmark option[value=blobs]")).to_have_text("blobs (plugin)")
    page.locator("#f-benchmark").select_option("blobs")
    expect(page.locator("#benchmark-help")).to_contain_text("distbench-example-plugin 0.1.0")
    page.locator("#f-benchmark").select_option("digits")
    screenshot(page, "runs-empty")

    # Keyboard only: tab to the workers field, type a bad value, submit with Enter.
    page.locator("#f-workers").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.locator("#f-cpus").fill("-1")
    page.keyboard.press("Enter")

    error = page.locator("#form-error")
    expect(error).to_contain_text("400")
    expect(error).to_contain_text("num_workers")
    workers_label = page.locator("label", has=page.locator("#f-workers"))
    expect(workers_label.locator(".field-error")).to_contain_text("greater than or equal to 1")
    expect(page.locator("#f-cpus")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "runs-validation")
    with client(server) as http:
        assert http.get("/api/runs/").json() == []


def test_a_run_started_from_the_form_opens_its_page_and_a_second_gets_the_409(
    server: RunningServer, page: Page
) -> None:
    page.goto(f"{server.url}/runs")
    page.locator("#f-name").fill("from the form")
    page.locator("#f-workers").fill("3")
    page.locator("#f-cpus").fill("0.5")
    page.locator("#f-bandwidth").fill("100")
    page.locator("#start").click()

    page.wait_for_url(f"{server.url}/runs/1")
    expect(page.locator("#run-title")).to_have_text("Run 1: from the form")
    expect(page.locator("#config")).to_contain_text("100 Mbit/s")
    with client(server) as http:
        run = http.get("/api/runs/1/").json()
    assert (run["num_workers"], run["num_cpus"], run["max_bandwidth"]) == (3, 0.5, 100)

    page.goto(f"{server.url}/runs")
    row = page.locator('tr[data-run-id="1"]')
    expect(row).to_contain_text("from the form")
    expect(row).to_contain_text("0.5 CPUs, 100 Mbit/s")
    page.locator("#start").click()
    error = page.locator("#form-error")
    expect(error).to_contain_text("409")
    expect(error).to_contain_text("run 1 is")
    expect(error.get_by_role("link", name="Open run 1")).to_have_attribute("href", "/runs/1")
    screenshot(page, "runs-409")


def test_the_run_page_charts_new_points_shows_logs_exports_and_aborts(
    server: RunningServer, page: Page
) -> None:
    with client(server) as http:
        run = start_run(http, name="charted")
        wait_for_state(http, run["id"], "STARTED")
        post_points(http, run["id"], range(3))
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{server.url}/runs/{run['id']}")

        chart = '[data-metric="val_accuracy"]'
        page.wait_for_function(f"document.querySelector('{chart}')?.data?.[0]?.x?.length === 3")
        post_points(http, run["id"], range(3, 6))
        page.wait_for_function(f"document.querySelector('{chart}')?.data?.[0]?.x?.length === 6")
        # The first load asks for a downsampled series, later polls only for what is new.
        metric_requests = [url for url in requested if "metric_type=run" in url]
        assert "max_points=" in metric_requests[0], metric_requests
        assert all("since=" in url for url in metric_requests[1:]), metric_requests
        expect(page.locator(f"{chart} .xtitle")).to_have_text("time (America/New_York)")
        expect(page.locator(f"{chart} .ytitle")).to_have_text(
            "val_accuracy (fraction, 0\N{EN DASH}1)"
        )

        page.get_by_label("epoch").check()
        expect(page.locator(f"{chart} .xtitle")).to_have_text("epoch")
        assert page.eval_on_selector(chart, "node => node.data[0].x") == [0, 1, 2, 3, 4, 5]

        expect(page.locator("#logs details")).to_have_count(2)
        expect(page.locator("#logs")).to_contain_text("fake log of distbench-worker-1-0")
        for fmt in ("csv", "json", "zip"):
            href = page.locator(f"#export-{fmt}").get_attribute("href")
            assert page.request.get(f"{server.url}{href}").status == 200, fmt
        screenshot(page, "run-live")

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#abort").click()
        expect(page.locator("#run-state")).to_have_text("ABORTED")
        expect(page.locator("#abort")).to_be_hidden()
        assert http.get(f"/api/runs/{run['id']}/").json()["state"] == "ABORTED"
        screenshot(page, "run-aborted")


def test_the_run_page_shows_the_result_summary_in_the_viewers_zone(
    server: RunningServer, page: Page
) -> None:
    with client(server) as http:
        run = start_run(http, name="ended")
        wait_for_state(http, run["id"], "STARTED")
        post_points(http, run["id"], range(4))
        server.fake.finish(run["id"])
        ended = wait_for_state(http, run["id"], "FINISHED")
    page.goto(f"{server.url}/runs/{run['id']}")
    expect(page.locator("#run-state")).to_have_text("FINISHED")
    expect(page.locator("#result")).to_contain_text("target reached")
    expect(page.locator("#result")).to_contain_text("total time")
    # Started at ...Z in UTC; the page says when in New York.
    started = dt.datetime.fromisoformat(ended["started_at"].replace("Z", "+00:00"))
    local = started.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    local_dst = started.astimezone(dt.timezone(dt.timedelta(hours=-4)))
    config = page.locator("#config").inner_text()
    assert f"{local:%-I:%M:%S}" in config or f"{local_dst:%-I:%M:%S}" in config, config
    expect(page.locator("#abort")).to_be_hidden()
    screenshot(page, "run-finished")


def test_the_overview_shows_each_pod_with_live_resource_charts(
    server: RunningServer, page: Page
) -> None:
    page.goto(f"{server.url}/")
    expect(page.locator("#pods-empty")).to_be_visible()
    expect(page.locator("#pods-empty")).to_contain_text("No pods right now")
    screenshot(page, "overview-empty")

    with client(server) as http:
        run = start_run(http, name="pods")
        wait_for_state(http, run["id"], "STARTED")
    cards = page.locator("article.pod")
    expect(cards).to_have_count(2)
    first = page.locator('[data-pod="distbench-worker-1-0"]')
    expect(first).to_contain_text("Running")
    expect(first).to_contain_text("198.18.0.2")
    expect(first.locator(".chip", has_text="run-id=1")).to_be_visible()
    cpu = '[data-pod="distbench-worker-1-0"] [data-chart="cpu"]'
    page.wait_for_function(f"document.querySelector('{cpu}')?.data?.[0]?.x?.length >= 2")
    before = trace_length(page, cpu)
    page.wait_for_function(
        f"document.querySelector('{cpu}').data[0].x.length > {before}", timeout=10_000
    )
    expect(page.locator(f"{cpu} .ytitle")).to_have_text("cores")
    network = '[data-pod="distbench-worker-1-0"] [data-chart="network"]'
    expect(page.locator(f"{network} .ytitle")).to_have_text("Mbit/s")
    screenshot(page, "overview-pods")

    # The phase follows the pod when its run ends (the fake's cleanup leaves it Failed).
    server.fake.finish(run["id"])
    expect(first.locator(".state")).not_to_have_text("Running")


def test_compare_overlays_two_runs_with_speedup_and_time_to_accuracy(
    server: RunningServer, page: Page
) -> None:
    page.goto(f"{server.url}/compare")
    expect(page.locator("#compare-empty")).to_contain_text("No runs yet")

    ids = []
    with client(server) as http:
        for workers in (1, 2):
            run = start_run(http, name=f"x{workers}", num_workers=workers)
            wait_for_state(http, run["id"], "STARTED")
            post_points(http, run["id"], range(5))
            server.fake.finish(run["id"])
            wait_for_state(http, run["id"], "FINISHED")
            ids.append(run["id"])
        start_run(http, name="not chosen", num_workers=4)

    page.goto(f"{server.url}/compare?run={ids[0]}&run={ids[1]}")
    overlay = "#overlay"
    page.wait_for_function("document.querySelector('#overlay')?.data?.length === 2")
    assert trace_length(page, overlay, 0) == 5
    assert trace_length(page, overlay, 1) == 5
    expect(page.locator("#metric")).to_have_value("val_accuracy")
    page.locator("#metric").select_option("train_loss")
    expect(page.locator("#overlay .gtitle")).to_have_text("train_loss by run")
    page.locator("#compare-x").select_option("epoch")
    expect(page.locator("#overlay .xtitle")).to_have_text("epoch")
    speedup: list[Any] = page.eval_on_selector("#speedup", "node => node.data[0].x")
    assert speedup == [1, 2]
    expect(page.locator("#compare-table tbody tr")).to_have_count(2)
    expect(page.locator("#compare-table")).to_contain_text("1.00\N{MULTIPLICATION SIGN}")
    screenshot(page, "compare")


@requires_root
def test_a_real_digits_run_started_from_the_form_charts_its_metrics_and_pods(
    local_servers: LocalServers, page: Page
) -> None:
    real = local_servers.start()
    page.goto(f"{real.url}/runs")
    page.locator("#f-benchmark").select_option("digits")
    page.locator("#f-workers").fill("2")
    page.locator("#f-cpus").fill("1")
    # A target never reached: the run trains until it is aborted below.
    page.locator("#f-options").fill(json.dumps(ENDLESS))
    page.locator("#start").click()
    page.wait_for_url(f"{real.url}/runs/1")

    # The overview, in a second tab while the run trains: both pods, CPU in cores gaining points.
    overview = page.context.new_page()
    overview.goto(f"{real.url}/")
    expect(overview.locator("article.pod")).to_have_count(2, timeout=60_000)
    cpu = '[data-pod="distbench-worker-1-0"] [data-chart="cpu"]'
    overview.wait_for_function(
        f"document.querySelector('{cpu}')?.data?.[0]?.y?.some(v => v > 0.05)", timeout=60_000
    )
    memory = '[data-pod="distbench-worker-1-0"] [data-chart="memory"]'
    overview.wait_for_function(f"document.querySelector('{memory}')?.data?.[0]?.y?.[0] > 10")
    screenshot(overview, "real-overview")
    overview.close()

    chart = '[data-metric="val_accuracy"]'
    page.wait_for_function(
        f"document.querySelector('{chart}')?.data?.[0]?.x?.length >= 2", timeout=90_000
    )
    before = trace_length(page, chart)
    page.wait_for_function(
        f"document.querySelector('{chart}').data[0].x.length > {before}", timeout=60_000
    )
    expect(page.locator("#run-state")).to_have_text("STARTED")
    expect(page.locator("#logs details")).to_have_count(2)
    screenshot(page, "real-run")

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#abort").click()
    expect(page.locator("#run-state")).to_have_text("ABORTED", timeout=30_000)
    screenshot(page, "real-run-aborted")


PHISH = '<a href="https://evil.example/">phish</a>'
# Every <a> on the page, HTML or SVG (Plotly draws its links as SVG <a xlink:href>), that points
# at the phishing address.
LINKS_TO_EVIL = """() => [...document.querySelectorAll("a")].filter(
  (a) => a.outerHTML.includes("evil.example")).length"""


def test_markup_in_metric_and_run_names_shows_as_text_never_as_a_link(
    server: RunningServer, page: Page
) -> None:
    ids = []
    with client(server) as http:
        # Two runs, so the compare page shows a legend (Plotly hides it for one trace).
        for name in (f"<b>bold</b> {PHISH}", "plain"):
            run = start_run(http, name=name, num_workers=1)
            wait_for_state(http, run["id"], "STARTED")
            points = [{"run_id": run["id"], "name": PHISH, "value": v} for v in (0.1, 0.2)]
            response = http.post("/api/metrics/batch", json=points)
            assert response.status_code == 201, response.text
            server.fake.finish(run["id"])
            wait_for_state(http, run["id"], "FINISHED")
            ids.append(run["id"])

    page.goto(f"{server.url}/runs/{ids[0]}")
    chart = page.locator("#charts .chart")
    page.wait_for_function("document.querySelector('#charts .chart')?.data?.[0]?.x?.length === 2")
    expect(chart.locator(".gtitle")).to_be_visible()
    assert page.evaluate(LINKS_TO_EVIL) == 0
    expect(chart.locator(".gtitle")).to_have_text(PHISH)
    expect(chart.locator(".ytitle")).to_have_text(f"{PHISH} (value)")
    expect(page.locator("#run-title")).to_have_text(f"Run {ids[0]}: <b>bold</b> {PHISH}")
    screenshot(page, "run-markup-names")

    page.goto(f"{server.url}/compare?run={ids[0]}&run={ids[1]}")
    page.wait_for_function("document.querySelector('#overlay')?.data?.[1]?.x?.length === 2")
    expect(page.locator("#metric")).to_have_value(PHISH)
    expect(page.locator("#overlay .gtitle")).to_have_text(f"{PHISH} by run")
    legend = page.locator("#overlay .legendtext")
    expect(legend).to_have_count(2)
    assert sorted(legend.all_text_contents()) == [
        f"#{ids[0]} <b>bold</b> {PHISH} (1 worker)",
        f"#{ids[1]} plain (1 worker)",
    ]
    assert page.evaluate(LINKS_TO_EVIL) == 0
    screenshot(page, "compare-markup-names")
