"""The allreduce task's bus bandwidth, nccl-tests' definition: what each link carried."""

from __future__ import annotations

import pytest

from distbench.benchmarks.allreduce import bus_bandwidth_mbit


def test_bus_bandwidth_scales_the_algorithm_bandwidth_by_2_n_minus_1_over_n() -> None:
    # 1 MB in 1 ms is 8,000 Mbit/s of algorithm bandwidth; two ranks: factor 1; four: 1.5.
    assert bus_bandwidth_mbit(1_000_000, 0.001, 2) == pytest.approx(8000)
    assert bus_bandwidth_mbit(1_000_000, 0.001, 4) == pytest.approx(12000)


def test_one_worker_has_no_bus_bandwidth() -> None:
    # Its all-reduce moves nothing between workers: a number here would be a local copy's speed
    # (on one H200 it read as 5,000 GB/s).
    assert bus_bandwidth_mbit(1_000_000, 0.001, 1) is None
