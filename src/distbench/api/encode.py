"""JSON responses, and the fast path for metric series (the API's largest answers)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi.responses import JSONResponse, Response

from distbench.metric_value import value_text
from distbench.store.metrics import PointRow, Series
from distbench.timefmt import EPOCH, UsFormatter

JSON_TYPE = "application/json; charset=utf-8"


class JSONBody(JSONResponse):
    """JSON rendered by orjson, typed ``application/json; charset=utf-8`` as docs/api.md says.

    A ``JSONResponse`` subclass so FastAPI documents routes' response models (a plain
    ``Response`` subclass made every answer a string in /openapi.json)."""

    media_type = JSON_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _text(value: str) -> str:
    return orjson.dumps(value).decode()


def series_json(series: Series, *, with_details: bool) -> str:
    """``{"name": [{"date": ..., "value": "..."}, ...]}`` built as text in one pass.

    A dict per point plus a serializer cost three times as much, and a 200,000-point series is
    what a long run's chart asks for (``bench/ingest.py`` measures it). Dates share their minute
    with their neighbours and metadata strings repeat, so both are formatted once and reused.
    """
    minute_text: dict[int, str] = {}
    metadata_json: dict[str, str] = {}
    parts = []
    for name, points in series.items():
        items: list[str] = []
        append = items.append
        for date_us, value, cumulative, metadata in points:
            minute, micros = divmod(date_us, 60_000_000)
            prefix = minute_text.get(minute)
            if prefix is None:
                start = EPOCH + dt.timedelta(minutes=minute)
                prefix = minute_text[minute] = start.strftime("%Y-%m-%dT%H:%M:")
            seconds, micros = divmod(micros, 1_000_000)
            # Number text never needs JSON escaping; text, as posted, does.
            value_json = _text(value) if value.__class__ is str else f'"{value_text(value)}"'
            if with_details:
                meta = metadata_json.get(metadata)
                if meta is None:
                    meta = metadata_json[metadata] = _text(metadata)
                # %-formatting: measurably faster than f-strings with format specs here.
                append(
                    '{"date":"%s%02d.%06dZ","value":%s,"cumulative":%s,"metadata":%s}'  # noqa: UP031
                    % (prefix, seconds, micros, value_json, "true" if cumulative else "false", meta)
                )
            else:
                append('{"date":"%s%02d.%06dZ","value":%s}' % (prefix, seconds, micros, value_json))  # noqa: UP031
        parts.append(f"{_text(name)}:[{','.join(items)}]")
    return "{" + ",".join(parts) + "}"


def series_response(series: Series, *, with_details: bool) -> Response:
    return Response(series_json(series, with_details=with_details), media_type=JSON_TYPE)


def pods_series_response(all_series: dict[str, Series]) -> Response:
    body = ",".join(
        f"{_text(pod)}:{series_json(series, with_details=False)}"
        for pod, series in all_series.items()
    )
    return Response("{" + body + "}", media_type=JSON_TYPE)


def points_as_dicts(points: list[PointRow], *, with_details: bool) -> list[dict[str, Any]]:
    """For exports: plain dicts with formatted dates and values."""
    fmt = UsFormatter()
    if with_details:
        return [
            {"date": fmt(d), "value": value_text(v), "cumulative": c, "metadata": m}
            for d, v, c, m in points
        ]
    return [{"date": fmt(d), "value": value_text(v)} for d, v, _c, _m in points]
