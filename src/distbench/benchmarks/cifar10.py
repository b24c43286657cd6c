"""CIFAR-10 as its authors ship it (``cifar-10-batches-py``: pickled batches of 10,000 images),
read without torchvision; downloaded once into a data directory where the machine has internet.
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


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as handle:
        # The format itself is a pickle; only files from the dataset's own archive are read.
        batch = pickle.load(handle, encoding="bytes")  # noqa: S301
    images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    return images, labels


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
    parts = [_read_batch(folder / name) for name in TRAIN_BATCHES]
    train_x = np.concatenate([images for images, _ in parts])
    train_y = np.concatenate([labels for _, labels in parts])
    test_x, test_y = _read_batch(folder / TEST_BATCH)
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


def write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    """Write a batch in CIFAR-10's own format (tests use it to build a tiny data set)."""
    batch = {
        b"batch_label": path.name.encode(),
        b"labels": list(labels),
        b"data": np.asarray(images, dtype=np.uint8).reshape(len(labels), 3 * 32 * 32),
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    with path.open("wb") as handle:
        pickle.dump(batch, handle)
