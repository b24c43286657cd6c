"""A metric value as text has one encoder, ``metric_value.value_text``, and it reads back as
the value it was: the server's answers, its exports, the client and the workers all use it."""

from __future__ import annotations

import math

import pytest

from distbench.metric_value import parse_value, value_text
from tests.source_literals import spellings_outside


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.7845, "0.7845"),
        (1.0, "1.0"),
        (0.1 + 0.2, "0.30000000000000004"),  # shortest text for the same float, not rounded
        (-0.0, "-0.0"),
        (1e300, "1e+300"),
        (5e-324, "5e-324"),  # the smallest subnormal
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
        (-float("nan"), "nan"),  # NaN's sign bit means nothing to a reader
        ("The model reached 80.1% accuracy", "The model reached 80.1% accuracy"),
        ("nan-ish text", "nan-ish text"),
    ],
)
def test_value_text(value: float | str, text: str) -> None:
    assert value_text(value) == text


@pytest.mark.parametrize(
    "value", [0.7845, -0.0, 1e300, 5e-324, -2.5e-8, float("inf"), float("-inf"), 123456789.0]
)
def test_a_number_reads_back_as_the_same_float(value: float) -> None:
    back = parse_value(value_text(value))

    assert isinstance(back, float)
    assert back == value
    assert math.copysign(1, back) == math.copysign(1, value)


def test_nan_reads_back_as_nan() -> None:
    back = parse_value(value_text(float("nan")))

    assert isinstance(back, float)
    assert math.isnan(back)


def test_text_reads_back_as_text() -> None:
    sentence = "TaskResult: reached 0.8 in 3 epochs"

    assert parse_value(value_text(sentence)) == sentence


def test_no_second_encoder_spells_nan_or_infinity() -> None:
    # Another encoder would have to spell these; json and repr alone give NaN/Infinity or
    # nothing the API reads back the same way.
    spellings = {"nan", '"nan"', "inf", "-inf", "infinity", "-infinity"}
    second_encoders = spellings_outside(
        lambda literal: literal.strip().lower() in spellings, owners={"metric_value.py"}
    )

    assert second_encoders == []
