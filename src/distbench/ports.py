"""Picking a free TCP port on this machine (rank 0's rendezvous, a test or bench server)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, the OS's choice. Another process may take it before the
    caller binds it; whoever binds it then says the address is in use."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
