"""What a metric value is: a number, or text. The one rule the server (storing) and the client
(reading back) share, so a value survives the round trip as what it was.

Values travel as strings both ways (the seed serves ``"0.7845"``), so the rule is about text:
ASCII number text, what ``float()`` reads less its oddities (other scripts' digits, underscores),
is a number, ``nan`` and ``inf`` included; any other text is text, kept as posted (MLBench's
workers post the goal's sentence as ``TaskResult``). Text never reads as a number, so a client
tells the two apart by this rule alone.
"""

from __future__ import annotations

import math
from typing import TypeAlias

# Longest text value: a sentence, a short log line; not a place to store files.
MAX_TEXT_CHARS = 10_000

MetricValue: TypeAlias = float | str


def as_number(text: str) -> float | None:
    """The number ``text`` holds when it is ASCII number text; ``None`` for other text."""
    # float() also reads other scripts' digits ("١٢" is 12) and underscores ("1_0"): those
    # stay text, as the API promises ASCII number text.
    if not text.isascii() or "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def parse_value(text: str) -> MetricValue:
    """A value as the API serves it, read back: a float for number text, else the text."""
    number = as_number(text)
    return text if number is None else number


def value_text(value: MetricValue) -> str:
    """A value as the API serves it: text as stored, a number as the shortest text that reads
    back as the same float (``nan``, ``inf``, ``-inf`` for those)."""
    if isinstance(value, str):
        return value
    return "nan" if math.isnan(value) else repr(value)


def is_number(value: MetricValue) -> bool:
    return not isinstance(value, str)
