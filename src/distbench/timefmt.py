"""Dates on the wire: ISO 8601 UTC with microseconds and ``Z``; in storage: integer microseconds.

Metric dates are stored as microseconds since the Unix epoch (UTC) so that both databases compare,
order and bucket them with plain integer arithmetic, and the hot read path formats them without
building a ``datetime`` per point.
"""

from __future__ import annotations

import datetime as dt
import time

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US_PER_S = 1_000_000


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (docs/api.md)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def iso_or_unchanged(value: object) -> object:
    """Text in any ISO 8601 form Python reads (basic ``20180803T092138Z`` included) as a
    datetime; anything else unchanged, for the caller's own parsing and error message."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    return value


_ONE_US = dt.timedelta(microseconds=1)


def to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:  # naive means UTC (docs/api.md); aware ones subtract across zones
        value = value.replace(tzinfo=dt.UTC)
    return (value - EPOCH) // _ONE_US


def now_us() -> int:
    return time.time_ns() // 1_000


def format_dt(value: dt.datetime) -> str:
    """``2018-08-03T09:21:38.594282Z``: the seed's form, microseconds always present."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_us(us: int) -> str:
    return format_dt(EPOCH + dt.timedelta(microseconds=us))


class UsFormatter:
    """Formats many microsecond stamps fast by caching the text of each minute.

    Series of metric points share minutes, so most points cost one dict lookup and one
    ``%`` format instead of a datetime construction and ``strftime``.
    """

    def __init__(self) -> None:
        self._minute_text: dict[int, str] = {}

    def __call__(self, us: int) -> str:
        seconds, micros = divmod(us, _US_PER_S)
        minute, second = divmod(seconds, 60)
        prefix = self._minute_text.get(minute)
        if prefix is None:
            start = EPOCH + dt.timedelta(minutes=minute)
            prefix = self._minute_text[minute] = start.strftime("%Y-%m-%dT%H:%M:")
        return f"{prefix}{second:02d}.{micros:06d}Z"
