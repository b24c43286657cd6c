"""Group means as MLBench's ``summarize`` computed them, on rows as the store returns them."""

from __future__ import annotations

import math

import pytest

from distbench.store.metrics import PointRow, SeriesQuery
from distbench.store.summarize import summarize_points, summarize_series


def rows(values: list[float | str]) -> list[PointRow]:
    return [(second, value, False, f"m{second}") for second, value in enumerate(values)]  # type: ignore[misc]


def test_groups_are_ceil_n_over_summarize_consecutive_points() -> None:
    assert summarize_points(rows([0, 1, 2, 3, 4, 5, 6]), 2) == [
        (0, 1.5, False, "m0"),
        (4, 5.0, False, "m4"),
    ]


def test_never_more_points_than_asked() -> None:
    for n in range(1, 60):
        for groups in range(1, n + 2):
            assert len(summarize_points(rows(list(range(n))), groups)) <= groups


def test_nan_in_a_group_makes_its_mean_nan() -> None:
    # A diverged run must still show as diverged when summarized.
    summarized = summarize_points(rows([1.0, math.nan, 3.0, 4.0]), 2)
    assert math.isnan(summarized[0][1])
    assert summarized[1] == (2, 3.5, False, "m2")


def test_text_points_pass_through_and_are_not_averaged() -> None:
    points = rows([1.0, 3.0, "Goal reached", 5.0, 7.0])

    assert summarize_points(points, 2) == [
        (0, 2.0, False, "m0"),
        (2, "Goal reached", False, "m2"),
        (3, 6.0, False, "m3"),
    ]


def test_last_n_then_max_points_cut_the_summarized_series() -> None:
    series = {"loss": rows([float(v) for v in range(12)])}

    summarized = summarize_series(series, 6, SeriesQuery(last_n=3))

    assert [value for _, value, _, _ in summarized["loss"]] == [6.5, 8.5, 10.5]


@pytest.mark.parametrize("groups", [1, 3])
def test_an_empty_series_stays_empty(groups: int) -> None:
    assert summarize_points([], groups) == []
