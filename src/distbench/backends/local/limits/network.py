"""``max_bandwidth``: each worker in its own network namespace on a per-run bridge, its egress
shaped by an HTB qdisc.

Addresses come from 198.18.0.0/15 (RFC 2544's benchmarking range), one /24 per run. Namespaces
get no default route, so nothing leaves them but traffic to the other workers of the run, and
``GLOO_SOCKET_IFNAME`` points gloo at the namespace's interface (without it every process-group
start waits seconds on name resolution).
"""

from __future__ import annotations

import ipaddress
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from distbench import cadvisor
from distbench.backends.local.limits.commands import CommandFailed, run
from distbench.errors import LimitUnsupported

BENCHMARK_RANGE = ipaddress.IPv4Network("198.18.0.0/15")
IFNAME = "eth0"
# shape() sets whole kbit/s: a smaller cap rounds to "0kbit", which tc refuses ('"rate" is
# required'), and the run failed while starting instead of being refused up front.
MIN_RATE_MBIT = 0.001


@dataclass(frozen=True, slots=True)
class WorkerNet:
    namespace: str
    host_veth: str
    ip: str


@dataclass(frozen=True, slots=True)
class RunNet:
    bridge: str
    subnet: str
    workers: tuple[WorkerNet, ...]
    rate_mbit: float | None


def namespaces_available() -> str | None:
    """None when this process can create namespaces and shape traffic, else why not."""
    if os.geteuid() != 0:
        return "the server is not running as root (CAP_NET_ADMIN is needed)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the `{tool}` command (iproute2) is not installed"
    return None


def check_bandwidth(max_bandwidth: float | None, *, problem: str | None) -> None:
    """A 400 for a cap when ``problem`` (``namespaces_available()``, as the backend found it
    when it started, and as its launches use it) says why namespaces cannot be made."""
    if max_bandwidth is None:
        return
    if problem is not None:
        raise LimitUnsupported(
            f"max_bandwidth={max_bandwidth:g} Mbit/s cannot be enforced: {problem}. Start the "
            "server as root, or leave max_bandwidth out for an uncapped run",
            details={"max_bandwidth": max_bandwidth},
        )


def _used_subnets() -> set[ipaddress.IPv4Network]:
    used: set[ipaddress.IPv4Network] = set()
    for line in run(["ip", "-o", "-4", "addr", "show"]).splitlines():
        fields = line.split()
        if "inet" in fields:
            address = ipaddress.ip_interface(fields[fields.index("inet") + 1])
            if address.ip in BENCHMARK_RANGE:
                used.add(ipaddress.IPv4Network(f"{address.ip}/24", strict=False))
    # Namespaces' addresses are not visible from here; bridges are, and each run has one.
    for line in run(["ip", "-o", "link", "show", "type", "bridge"]).splitlines():
        name = line.split(":")[1].strip()
        if name.startswith("dbb"):
            for sub in _bridge_subnets(name):
                used.add(sub)
    return used


def _bridge_subnets(bridge: str) -> list[ipaddress.IPv4Network]:
    alias = run(["ip", "-o", "link", "show", "dev", bridge], check=False)
    marker = "alias "
    if marker in alias:
        text = alias.split(marker, 1)[1].split()[0]
        try:
            return [ipaddress.IPv4Network(text)]
        except ValueError:
            return []
    return []


def _pick_subnet() -> ipaddress.IPv4Network:
    used = _used_subnets()
    candidates = [net for net in BENCHMARK_RANGE.subnets(new_prefix=24) if net not in used]
    if not candidates:
        raise LimitUnsupported("no free /24 left in 198.18.0.0/15 for a run's workers")
    return random.choice(candidates)  # noqa: S311 -- spreads concurrent servers, not security


def plan_net(tag: str, num_workers: int, rate_mbit: float | None) -> RunNet:
    """The names and addresses of one run's network, created by nothing yet: the backend
    records them before ``build`` creates them, so a server killed half-way through leaves a
    record of everything there may be to remove. ``tag`` (6 hex digits) makes every name
    unique."""
    subnet = _pick_subnet()
    hosts = list(subnet.hosts())
    workers = tuple(
        WorkerNet(
            namespace=f"distbench-{tag}-{rank}",
            host_veth=f"dbh{tag}{rank}",
            ip=str(hosts[rank + 1]),
        )
        for rank in range(num_workers)
    )
    return RunNet(bridge=f"dbb{tag}", subnet=str(subnet), workers=workers, rate_mbit=rate_mbit)


def build(plan: RunNet) -> None:
    """Bridge, namespaces, veths, addresses and shaping as ``plan`` says; on failure everything
    created so far is removed."""
    subnet = ipaddress.IPv4Network(plan.subnet)
    try:
        run(["ip", "link", "add", plan.bridge, "type", "bridge"])
        # The alias records the run's subnet on the bridge, so other servers avoid it.
        run(["ip", "link", "set", "dev", plan.bridge, "alias", str(subnet)])
        run(["ip", "link", "set", plan.bridge, "up"])
        for worker in plan.workers:
            _create_worker(plan, worker, subnet.prefixlen)
    except CommandFailed as exc:
        destroy(plan)
        raise LimitUnsupported(f"could not create the run's network: {exc}") from exc


def _create_worker(plan: RunNet, worker: WorkerNet, prefix: int) -> None:
    ns = worker.namespace
    peer = f"dbn{worker.host_veth[3:]}"
    run(["ip", "netns", "add", ns])
    run(["ip", "link", "add", worker.host_veth, "type", "veth", "peer", "name", peer])
    run(["ip", "link", "set", peer, "netns", ns])
    run(["ip", "link", "set", worker.host_veth, "master", plan.bridge, "up"])
    run(["ip", "-n", ns, "link", "set", peer, "name", IFNAME])
    run(["ip", "-n", ns, "addr", "add", f"{worker.ip}/{prefix}", "dev", IFNAME])
    run(["ip", "-n", ns, "link", "set", IFNAME, "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    if plan.rate_mbit is not None:
        shape(ns, plan.rate_mbit)


def shape(namespace: str, rate_mbit: float) -> None:
    """HTB on the namespace's egress: measured here, a 100 Mbit/s class gives 88-92 Mbit/s of
    all-reduce bus bandwidth, 1000 gives ~945 (TBF needed hand-tuned bursts to get close)."""
    rate = f"{rate_mbit * 1000:.0f}kbit"
    tc = ["ip", "netns", "exec", namespace, "tc"]
    run([*tc, "qdisc", "add", "dev", IFNAME, "root", "handle", "1:", "htb", "default", "10"])
    run(
        [
            *tc,
            "class",
            "add",
            "dev",
            IFNAME,
            "parent",
            "1:",
            "classid",
            "1:10",
            "htb",
            "rate",
            rate,
            "ceil",
            rate,
        ]
    )


def destroy(plan: RunNet) -> None:
    """Remove the run's namespaces (their veths go with them) and bridge; idempotent."""
    for worker in plan.workers:
        run(["ip", "netns", "delete", worker.namespace], check=False)
        run(["ip", "link", "delete", worker.host_veth], check=False)
    run(["ip", "link", "delete", plan.bridge], check=False)


def counters(worker: WorkerNet) -> dict[str, float]:
    """The worker's network counters, read off the host end of its veth (whose receive is the
    worker's transmit)."""
    stats = Path("/sys/class/net") / worker.host_veth / "statistics"
    try:
        received_by_host = int((stats / "rx_bytes").read_text())
        sent_by_host = int((stats / "tx_bytes").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {
        cadvisor.TRANSMIT_BYTES: float(received_by_host),
        cadvisor.RECEIVE_BYTES: float(sent_by_host),
    }
