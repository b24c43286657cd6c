"""The smallest ``max_bandwidth`` the API accepts is one tc really sets: the API's lower bound
(``MIN_RATE_MBIT``) comes from here, and half of it is what used to fail in tc after the run
had been accepted."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from distbench.backends.local.limits import network
from distbench.backends.local.limits.commands import CommandFailed
from tests.backends.local_helpers import requires_root


@pytest.fixture
def namespace() -> Iterator[str]:
    """A namespace holding the interface ``shape`` shapes (a veth pair: no address, no route)."""
    name = f"distbench-minrate-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(
            ["ip", "-n", name, "link", "add", network.IFNAME, "type", "veth", "peer", "peer0"],
            check=True,
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def htb_classes(namespace: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", namespace, "tc", "class", "show", "dev", network.IFNAME],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@requires_root
def test_the_smallest_accepted_cap_is_set_by_tc(namespace: str) -> None:
    network.shape(namespace, network.MIN_RATE_MBIT)

    assert "rate 1Kbit ceil 1Kbit" in htb_classes(namespace)


@requires_root
def test_a_cap_below_it_is_one_tc_refuses(namespace: str) -> None:
    with pytest.raises(CommandFailed, match="rate"):
        network.shape(namespace, network.MIN_RATE_MBIT / 2)
