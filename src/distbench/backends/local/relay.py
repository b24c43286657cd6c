"""A Unix-socket relay to the server's TCP port, for workers in network namespaces.

Namespaced workers cannot reach the server's loopback address, and their metric posts must not
travel over the capped interface they are benchmarking; a Unix socket crosses namespaces
through the file system and costs none of their bandwidth.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def socket_path_for(data_dir: Path) -> Path:
    """A stable, short path (Unix socket paths are limited to ~107 bytes) for one data dir, so
    workers adopted after a server restart find the new relay where the old one was."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"distbench-{digest}.sock"


class Relay:
    def __init__(self, path: Path, target_host: str, target_port: int) -> None:
        self.path = path
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        os.chmod(self.path, 0o600)
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError as exc:
            log.warning("relay: cannot reach the server at %s:%s: %s", *self.target, exc)
            client.close()
            return
        upstream.settimeout(None)
        done = threading.Event()
        threading.Thread(target=_pump, args=(client, upstream, done), daemon=True).start()
        _pump(upstream, client, done)


def _pump(source: socket.socket, sink: socket.socket, done: threading.Event) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        if not done.is_set():
            done.set()
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        else:
            source.close()
            sink.close()
