"""cAdvisor's names for a pod's resource counters, spelled here and nowhere else.

The names cross processes and languages: the backends read a worker's CPU, memory and network
under them (the kubelet's summary API, the local backend's ``/proc`` and veth statistics), the
collector stores them as pod metrics, the run summary and ``distbench watch`` read them back
and the dashboard's overview charts them (the page carries them, see ``dashboard/pages.py``).
They are cAdvisor's because MLBench's dashboard read cAdvisor, so its pod metrics keep their
names. A test fails if one of them is spelled outside this module.
"""

from __future__ import annotations

from typing import Final

CPU_SECONDS: Final = "container_cpu_usage_seconds_total"
CPU_USER_SECONDS: Final = "container_cpu_user_seconds_total"
CPU_SYSTEM_SECONDS: Final = "container_cpu_system_seconds_total"
MEMORY_BYTES: Final = "container_memory_usage_bytes"
TRANSMIT_BYTES: Final = "container_network_transmit_bytes_total"
RECEIVE_BYTES: Final = "container_network_receive_bytes_total"

RESOURCE_METRICS: Final = (
    CPU_SECONDS,
    CPU_USER_SECONDS,
    CPU_SYSTEM_SECONDS,
    MEMORY_BYTES,
    TRANSMIT_BYTES,
    RECEIVE_BYTES,
)


def is_counter(name: str) -> bool:
    """Whether the metric only grows (cAdvisor's ``*_total``): stored cumulative, charted as a
    rate; the others (memory) are levels."""
    return name.endswith("_total")
