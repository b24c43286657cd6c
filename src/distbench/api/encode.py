"""JSON responses, and the fast path for metric series (the API's largest answers)."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response

from distbench.store.metrics import PointRow, Series
from distbench.timefmt import UsFormatter

JSON_TYPE = "application/json; charset=utf-8"


class JSONBody(JSONResponse):
    # A JSONResponse, so that FastAPI documents each route's ``response_model`` (for any other
    # response class the OpenAPI document says the body is a string).
    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _value_text(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)


def series_json(series: Series, *, with_details: bool, fmt: UsFormatter) -> str:
    """``{"name": [{"date": ..., "value": "..."}, ...]}`` built as text directly.

    Building a dict per point and serializing it costs twice as much; a 200,000-point series is
    what the dashboard asks for, so this path is measured in ``bench/ingest.py``.
    """
    parts = []
    for name, points in series.items():
        if with_details:
            items = ",".join(
                [
                    f'{{"date":"{fmt(d)}","value":"{_value_text(v)}",'
                    f'"cumulative":{"true" if c else "false"},"metadata":{_text(m)}}}'
                    for d, v, c, m in points
                ]
            )
        else:
            items = ",".join(
                [f'{{"date":"{fmt(d)}","value":"{_value_text(v)}"}}' for d, v, _c, _m in points]
            )
        parts.append(f"{_text(name)}:[{items}]")
    return "{" + ",".join(parts) + "}"


def _text(value: str) -> str:
    return orjson.dumps(value).decode()


def series_response(series: Series, *, with_details: bool) -> Response:
    return Response(
        series_json(series, with_details=with_details, fmt=UsFormatter()), media_type=JSON_TYPE
    )


def pods_series_response(all_series: dict[str, Series]) -> Response:
    fmt = UsFormatter()
    body = ",".join(
        f"{_text(pod)}:{series_json(series, with_details=False, fmt=fmt)}"
        for pod, series in all_series.items()
    )
    return Response("{" + body + "}", media_type=JSON_TYPE)


def points_as_dicts(points: list[PointRow], *, with_details: bool) -> list[dict[str, Any]]:
    """For exports: plain dicts with formatted dates and values."""
    fmt = UsFormatter()
    if with_details:
        return [
            {"date": fmt(d), "value": _value_text(v), "cumulative": c, "metadata": m}
            for d, v, c, m in points
        ]
    return [{"date": fmt(d), "value": _value_text(v)} for d, v, _c, _m in points]
