"""Reading LIBSVM-format files (``label index:value ...``) without echoing what they hold.

scikit-learn's reader quotes the text it could not parse ("could not convert string to float:
b'root:$6$...'"), and a worker's error reaches the run's logs, which anyone may read: a run
naming a file that is not LIBSVM would publish a line of it. So a file the reader refuses is
described here by where (line, item) and what was expected, never by its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.datasets import load_svmlight_files


class LibsvmError(ValueError):
    """A file is not in LIBSVM format; the message says where, never what the file holds."""


def load_files(paths: Sequence[str]) -> list[Any]:
    """``load_svmlight_files(paths)`` as float32: matrices and targets alternating."""
    try:
        loaded: list[Any] = list(load_svmlight_files(list(paths), dtype=np.float32))
    except Exception as exc:  # the reader raises several kinds, messages quoting the file
        raise LibsvmError(_describe(paths, exc)) from None
    return loaded


def _describe(paths: Sequence[str], exc: Exception) -> str:
    for path in paths:
        try:
            problem = first_problem(path)
        except OSError as error:
            return f"{path}: cannot be read ({error.strerror or type(error).__name__})"
        if problem is not None:
            return f"{path}: not a LIBSVM-format file: {problem}"
    return (
        f"{', '.join(paths)}: not read as LIBSVM-format files ({type(exc).__name__}); each "
        "line must be 'LABEL INDEX:VALUE ...' with increasing indices"
    )


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def first_problem(path: str) -> str | None:
    """Where the first line that is not ``LABEL INDEX:VALUE ...`` is, and what was expected
    there; None if every line has that shape."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            fields = raw.split(b"#", 1)[0].split()
            if not fields:
                continue
            if not _is_number(fields[0]):
                return f"line {number}: expected a number (the label) first"
            for item, pair in enumerate(fields[1:], start=2):
                index, colon, value = pair.partition(b":")
                if not colon:
                    return f"line {number}, item {item}: expected INDEX:VALUE"
                if not (index.isdigit() or index == b"qid"):
                    return f"line {number}, item {item}: expected a whole-number feature index"
                if not _is_number(value):
                    return f"line {number}, item {item}: expected a number after the ':'"
    return None
