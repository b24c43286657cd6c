"""CIFAR-10 batch files for tests: a tiny data set in the real format, a batch byte for byte as
the published files are laid out (Python 2's pickle protocol 2), and crafted pickles that would
run a command if they were ever unpickled plainly."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np

from distbench.benchmarks import cifar10

IMAGES_PER_BATCH = 16


def write_tiny_cifar10(root: Path) -> Path:
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        labels = [int(v) for v in rng.integers(0, 10, IMAGES_PER_BATCH)]
        images = rng.integers(0, 256, (IMAGES_PER_BATCH, 3, 32, 32), dtype=np.uint8)
        write_batch(folder / name, images, labels)
    return folder


def write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """Write a batch in CIFAR-10's own format.

    Protocol 4 rebuilds the array with the same three numpy names as the real files do
    (protocol 2 from Python 3 would add ``_codecs.encode`` for each byte string, protocol 5
    ``_frombuffer``); byte strings are byte strings, as the real files' are when read."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": list(labels),
        b"data": np.asarray(images, dtype=np.uint8).reshape(len(labels), 3 * 32 * 32),
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    with path.open("wb") as handle:
        pickle.dump(batch, handle, protocol=4)


def _string(value: bytes) -> bytes:
    """A Python 2 ``str`` as cPickle wrote it: SHORT_BINSTRING or BINSTRING."""
    if len(value) < 256:
        return b"U" + bytes([len(value)]) + value
    return b"T" + struct.pack("<i", len(value)) + value


def python2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the published files hold it: a dict of Python 2 strings, a list of ints and
    an array rebuilt by ``numpy.core.multiarray._reconstruct`` (numpy 1's name)."""
    data = np.asarray(images, dtype=np.uint8).reshape(len(labels), 3 * 32 * 32)
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + b"K\x00\x85"  # (0,)
        + _string(b"b")
        + b"\x87R"  # _reconstruct(ndarray, (0,), b"b")
        + b"(K\x01"  # __setstate__((1, shape, dtype, False, raw bytes))
        + b"M"
        + struct.pack("<H", len(labels))
        + b"M"
        + struct.pack("<H", data.shape[1])
        + b"\x86"
        + b"cnumpy\ndtype\n"
        + _string(b"u1")
        + b"\x89\x88\x87R"  # dtype("u1", False, True)
        + b"(K\x03"
        + _string(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
        + b"\x89"
        + _string(data.tobytes())
        + b"tb"
    )
    return (
        b"\x80\x02}("
        + _string(b"batch_label")
        + _string(b"training batch 1 of 5")
        + _string(b"labels")
        + b"]("
        + b"".join(b"K" + bytes([label]) for label in labels)
        + b"e"
        + _string(b"data")
        + array
        + _string(b"filenames")
        + b"]("
        + b"".join(_string(f"{i}.png".encode()) for i in range(len(labels)))
        + b"e"
        + b"u."
    )


class _RunsCommand:
    """Unpickled plainly, runs ``command`` through ``os.system``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


class _CallsBuiltin:
    """Unpickled plainly, calls ``builtins.exec`` on ``source``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, (self.source,))


def crafted_batches(marker: Path) -> dict[str, bytes]:
    """Pickles that create ``marker`` when unpickled plainly, each disguised as a batch."""
    command = f"touch {marker}"
    source = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": pickle.dumps(_RunsCommand(command), protocol=2),
        "builtins.exec": pickle.dumps({b"data": _CallsBuiltin(source), b"labels": []}),
        # Protocol 0 names the callable with the INST opcode instead of GLOBAL.
        "protocol 0": pickle.dumps(_RunsCommand(command), protocol=0),
    }
