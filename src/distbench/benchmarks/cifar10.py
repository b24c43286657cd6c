"""CIFAR-10 as its authors ship it (``cifar-10-batches-py``: pickled batches of 10,000 images),
read without torchvision; downloaded once into a data directory where the machine has internet.

The batches are pickles, and a pickle can name any callable to run while it loads. They are read
with an unpickler that admits only what the real files hold (dicts, byte strings, lists, ints and
numpy uint8 arrays, whose rebuilding names exactly ``_reconstruct``, ``ndarray`` and ``dtype``), so
a crafted file in a data folder is refused instead of running code as the server's user.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
# Per-channel mean and standard deviation of the training images (the usual normalisation).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class DatasetMissing(FileNotFoundError):
    pass


class DatasetInvalid(ValueError):
    """A file where a CIFAR-10 batch should be is not one (or is a crafted pickle)."""


# ``ndarray.__reduce__`` names numpy's private rebuilder (``numpy.core.multiarray._reconstruct``
# in the real files, written by numpy 1; ``numpy._core.multiarray`` since numpy 2).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class Refused(pickle.UnpicklingError):
    """The unpickler's own refusal: its message quotes nothing of the file."""


class BatchUnpickler(pickle.Unpickler):
    """Refuses every global but the three numpy names an array of a real batch needs."""

    def find_class(self, module: str, name: str) -> object:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            # The names come from the file: not echoed, as nothing of a file's content is.
            raise Refused("it names a callable that CIFAR-10 batches never hold")
        return allowed

    def persistent_load(self, pid: object) -> object:
        raise Refused("it holds a persistent reference")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of one batch file, or ``DatasetInvalid``."""
    with path.open("rb") as handle:
        try:
            batch = BatchUnpickler(handle, encoding="bytes").load()
        except Refused as exc:
            raise DatasetInvalid(
                f"{path} is not a CIFAR-10 batch: {exc}; use the files of {URL}"
            ) from None
        except Exception as exc:  # a malformed pickle raises many kinds
            # Not chained, nor its message shown: pickle's messages can quote the file (an
            # invalid load key is one of its bytes).
            raise DatasetInvalid(
                f"{path} is not a CIFAR-10 batch (unreadable as one: {type(exc).__name__}); "
                f"use the files of {URL}"
            ) from None
    return _checked(path, batch)


def _checked(path: Path, batch: object) -> tuple[np.ndarray, np.ndarray]:
    data = batch.get(b"data") if isinstance(batch, dict) else None
    labels = batch.get(b"labels") if isinstance(batch, dict) else None
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == 3 * 32 * 32
        and isinstance(labels, list)
        and len(labels) == data.shape[0]
        and all(type(label) is int and 0 <= label < 10 for label in labels)
    ):
        raise DatasetInvalid(
            f"{path} is not a CIFAR-10 batch: it needs b'data' (N x 3072 uint8) and b'labels' "
            f"(N ints 0-9); use the files of {URL}"
        )
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def download(root: Path) -> Path:
    """Fetch and unpack the archive into ``root`` (checked against its published MD5)."""
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    if not archive.exists():
        partial = archive.with_suffix(".part")
        urllib.request.urlretrieve(URL, partial)
        partial.replace(archive)
    digest = hashlib.md5(archive.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != MD5:
        archive.unlink()
        raise DatasetMissing(f"the CIFAR-10 archive from {URL} had MD5 {digest}, not {MD5}")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    return root / FOLDER


def locate(root: Path, *, allow_download: bool) -> Path:
    folder = root / FOLDER if (root / FOLDER).is_dir() else root
    if all((folder / name).exists() for name in (*TRAIN_BATCHES, TEST_BATCH)):
        return folder
    if allow_download:
        try:
            return download(root)
        except OSError as exc:
            raise DatasetMissing(
                f"CIFAR-10 is not in {root} and could not be downloaded ({exc}): put "
                f"{FOLDER}/ there, or use dataset=synthetic"
            ) from exc
    raise DatasetMissing(
        f"CIFAR-10 is not in {root}: put {FOLDER}/ (from {URL}) there, or use dataset=synthetic"
    )


def load(folder: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train images and labels, then test images and labels; images normalised float32."""
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    train_x = np.concatenate([images for images, _ in parts])
    train_y = np.concatenate([labels for _, labels in parts])
    test_x, test_y = read_batch(folder / TEST_BATCH)
    return (
        normalise(train_x),
        torch.from_numpy(train_y),
        normalise(test_x),
        torch.from_numpy(test_y),
    )


def normalise(images: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(images).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


def synthetic(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images of CIFAR-10's shape, for throughput-only runs (nothing to learn)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(samples, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return images, labels
