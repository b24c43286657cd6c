"""Start latency of a run: POST /api/runs/ -> every worker STARTED -> first run metric stored.

    .venv/bin/python bench/start.py [--repeat 5] [--record]

Each run is the default request (digits on two workers), aborted once its first metric is in.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time

import httpx

from live_server import live_server, wait_for_end
from sections import write_section


def one_start(base: str, index: int, max_bandwidth: float | None) -> tuple[float, float]:
    started = time.perf_counter()
    body = {"name": f"start latency {index}", "num_workers": 2, "num_cpus": 1}
    if max_bandwidth is not None:
        body["max_bandwidth"] = max_bandwidth
    run = httpx.post(f"{base}/api/runs/", json=body, timeout=30).json()
    run_id = run["id"]
    to_started = to_metric = None
    deadline = started + 60
    while time.perf_counter() < deadline and (to_started is None or to_metric is None):
        if to_started is None:
            state = httpx.get(f"{base}/api/runs/{run_id}/").json()["state"]
            if state == "STARTED":
                to_started = time.perf_counter() - started
            elif state != "INITIALIZED":
                raise RuntimeError(f"run {run_id} ended {state} before starting")
        if to_metric is None:
            series = httpx.get(f"{base}/api/metrics/{run_id}/", params={"metric_type": "run"})
            if series.json():
                to_metric = time.perf_counter() - started
        time.sleep(0.02)
    httpx.delete(f"{base}/api/runs/{run_id}/", timeout=60)
    wait_for_end(base, run_id, timeout_s=60)
    if to_started is None or to_metric is None:
        raise RuntimeError(f"run {run_id} did not start and report within 60 s")
    return to_started, to_metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bandwidth", type=float, default=None, help="cap, Mbit/s (namespaces)")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    results = []
    with live_server() as base:
        # The first run after a server start waits for the warm launcher to finish importing
        # torch; it is shown, but the medians are of the runs after it.
        to_started, to_metric = one_start(base, 0, args.bandwidth)
        print(f"first run after server start: STARTED {to_started:.2f} s, metric {to_metric:.2f} s")
        for index in range(1, args.repeat + 1):
            to_started, to_metric = one_start(base, index, args.bandwidth)
            results.append((to_started, to_metric))
            print(
                f"run {index}: STARTED after {to_started:.2f} s, "
                f"first metric after {to_metric:.2f} s"
            )
    started = statistics.median(r[0] for r in results)
    metric = statistics.median(r[1] for r in results)
    print(f"median: STARTED {started:.2f} s, first metric {metric:.2f} s (target <= 5 s)")
    if args.record:
        record(results, args.bandwidth)


def record(results: list[tuple[float, float]], bandwidth: float | None) -> None:
    started = [r[0] for r in results]
    metric = [r[1] for r in results]
    section = "\n".join(
        [
            "## Start latency",
            "",
            f"Measured {dt.date.today()} on {os.cpu_count()} cores with "
            f"`.venv/bin/python bench/start.py --record"
            f"{'' if bandwidth is None else f' --bandwidth {bandwidth:g}'}` "
            f"({len(results)} default runs: digits, 2 workers, 1 CPU each, after one run that "
            "warms the server's launcher).",
            "",
            "| | median (s) | min (s) | max (s) |",
            "|---|---|---|---|",
            f"| POST -> all workers STARTED | {statistics.median(started):.2f} | "
            f"{min(started):.2f} | {max(started):.2f} |",
            f"| POST -> first run metric stored | {statistics.median(metric):.2f} | "
            f"{min(metric):.2f} | {max(metric):.2f} |",
            "",
        ]
    )
    write_section("Start latency", section)


if __name__ == "__main__":
    main()
