from __future__ import annotations

from pydantic import Field, field_validator

from distbench.benchmarks.base import BenchmarkSpec, TaskOptions

DEFAULT_SIZES = [1024 * 4**i for i in range(9)]  # 1 KiB .. 64 MiB


class AllreduceOptions(TaskOptions):
    """Options of the ``allreduce`` task (MLBench's task 0)."""

    sizes_bytes: list[int] = Field(
        default_factory=lambda: list(DEFAULT_SIZES),
        min_length=1,
        max_length=64,
        description="Message sizes in bytes, each a multiple of the element size.",
    )
    repetitions: int = Field(default=5, ge=1, le=10_000, description="Timed all-reduces a size.")
    warmup: int = Field(default=1, ge=0, le=100, description="Untimed all-reduces first.")
    dtype: str = Field(
        default="auto",
        pattern="^(auto|float32|float16)$",
        description="auto: float16 on GPUs, float32 on CPUs (as MLBench measured).",
    )

    @field_validator("sizes_bytes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        for size in sizes:
            if not 4 <= size <= 2**31:
                raise ValueError(f"{size} bytes is outside 4 B .. 2 GiB")
        return sizes


# Registered under the entry point group ``distbench.benchmarks`` (pyproject.toml), as a plugin's
# task is: this module is torch-free, so the server lists and checks the task without torch.
SPEC = BenchmarkSpec(
    name="allreduce",
    description="All-reduce time and bus bandwidth for message sizes from 1 KiB to 64 MiB "
    "(MLBench's task 0).",
    options=AllreduceOptions,
    entry="distbench.benchmarks.allreduce:run",
)
