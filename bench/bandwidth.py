"""Measured all-reduce bus bandwidth between two workers under ``max_bandwidth`` caps.

Runs the ``allreduce`` task on two local workers in network namespaces (needs root), once per
cap, and prints the bus bandwidth of the largest messages beside the nominal cap.

    .venv/bin/python bench/bandwidth.py [--caps 10,100,1000] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os

import httpx

from live_server import live_server, wait_for_end
from sections import write_section

MiB = 1024 * 1024


def size_text(size_bytes: int) -> str:
    return f"{size_bytes // MiB} MiB" if size_bytes >= MiB else f"{size_bytes // 1024} KiB"


def sizes_for(cap_mbit: float | None) -> list[int]:
    # Large enough to be bandwidth-bound, small enough to take seconds, not minutes, per cap.
    top = (
        64 * MiB
        if cap_mbit is None or cap_mbit >= 1000
        else (16 * MiB if cap_mbit >= 100 else 2 * MiB)
    )
    return [top // 4, top // 2, top]


def measure(base: str, cap: float | None) -> dict[str, object]:
    body = {
        "name": f"bandwidth cap={cap}",
        "num_workers": 2,
        "num_cpus": 1,
        "max_bandwidth": cap,
        "benchmark": "allreduce",
        "options": {"sizes_bytes": sizes_for(cap), "repetitions": 5, "warmup": 1},
    }
    run = httpx.post(f"{base}/api/runs/", json=body, timeout=30).json()
    ended = wait_for_end(base, run["id"], timeout_s=600)
    if ended["state"] != "FINISHED":
        raise RuntimeError(f"run ended {ended['state']}: {ended['job_metadata']}")
    series = httpx.get(
        f"{base}/api/metrics/{run['id']}/",
        params={"metric_type": "run", "metric_filter": "bus_bandwidth_mbit"},
    ).json()["bus_bandwidth_mbit"]
    by_size = {json.loads(p["metadata"])["bytes"]: float(p["value"]) for p in series}
    largest = max(by_size)
    return {
        "cap_mbit": cap,
        "bus_mbit_by_size": by_size,
        "bus_mbit_largest": by_size[largest],
        "limits": ended["job_metadata"].get("limits", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default="10,100,1000,none")
    parser.add_argument("--record", action="store_true", help="write bench/RESULTS.md's section")
    args = parser.parse_args()
    caps = [None if c == "none" else float(c) for c in args.caps.split(",")]
    rows = []
    with live_server() as base:
        for cap in caps:
            row = measure(base, cap)
            rows.append(row)
            sizes = ", ".join(
                f"{size_text(size)}: {mbit:.1f}"
                for size, mbit in sorted(row["bus_mbit_by_size"].items())  # type: ignore[attr-defined]
            )
            ratio = "" if cap is None else f"  ({row['bus_mbit_largest'] / cap:.0%} of the cap)"  # type: ignore[operator]
            print(f"cap {cap or 'none':>6} Mbit/s -> bus bandwidth {sizes}{ratio}", flush=True)
    if args.record:
        record(rows)


def record(rows: list[dict[str, object]]) -> None:
    lines = [
        "## Bandwidth caps",
        "",
        f"Measured {dt.date.today()} on {os.cpu_count()} cores with "
        "`.venv/bin/python bench/bandwidth.py --record` (2 workers, allreduce task, HTB egress "
        "caps in network namespaces; bus bandwidth as nccl-tests defines it, median of 5).",
        "",
        "| cap (Mbit/s) | bus bandwidth, largest message (Mbit/s) | of the cap "
        "| by message size (Mbit/s) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        cap = row["cap_mbit"]
        largest = float(row["bus_mbit_largest"])  # type: ignore[arg-type]
        sizes = ", ".join(
            f"{size_text(size)}: {mbit:.1f}"
            for size, mbit in sorted(row["bus_mbit_by_size"].items())  # type: ignore[attr-defined]
        )
        share = "-" if cap is None else f"{largest / float(cap):.0%}"  # type: ignore[arg-type]
        lines.append(f"| {cap or 'none'} | {largest:.1f} | {share} | {sizes} |")
    section = "\n".join(lines) + "\n"
    write_section("Bandwidth caps", section)


if __name__ == "__main__":
    main()
