"""Compute against communication time, measured around the blocks that do each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Timers:
    compute_s: float = 0.0
    communication_s: float = 0.0

    @contextmanager
    def compute(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.compute_s += time.perf_counter() - started

    @contextmanager
    def communication(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.communication_s += time.perf_counter() - started

    def reset(self) -> None:
        self.compute_s = 0.0
        self.communication_s = 0.0
