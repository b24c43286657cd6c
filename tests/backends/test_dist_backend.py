"""Which torch.distributed backend goes with which hardware: decided in ``backends/base.py``,
for the API's default and every backend's check alike."""

from __future__ import annotations

from distbench.backends.base import default_dist_backend, dist_backends
from tests.source_literals import spellings_outside


def test_gpus_default_to_nccl_and_also_take_gloo_cpus_take_gloo_only() -> None:
    assert default_dist_backend(gpu=True) == "nccl"
    assert default_dist_backend(gpu=False) == "gloo"
    assert dist_backends(gpu=True) == ("nccl", "gloo")
    assert dist_backends(gpu=False) == ("gloo",)
    for gpu in (True, False):
        assert dist_backends(gpu=gpu)[0] == default_dist_backend(gpu=gpu)


def test_the_rule_is_spelled_only_in_its_owner_module() -> None:
    found = spellings_outside(
        lambda literal: literal == "nccl",
        owners={
            "backends/base.py",
            # The API's vocabulary (what a request may name, mpi included), not the rule of
            # which backend may run where.
            "api/schemas.py",
        },
    )
    assert found == []
