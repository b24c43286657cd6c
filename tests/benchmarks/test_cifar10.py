"""CIFAR-10's batches are pickles: they are read without running anything a file names (a crafted
file is refused, its command never runs), while batches in the real format still load."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from distbench.benchmarks import cifar10
from tests.benchmarks.cifar_files import crafted_batches, python2_batch, write_tiny_cifar10

SECRET = "hunter2-do-not-echo"


def test_a_batch_laid_out_as_the_published_files_loads(tmp_path: Path) -> None:
    images = (np.arange(3 * 3 * 32 * 32) % 256).astype(np.uint8).reshape(3, 3, 32, 32)
    path = tmp_path / "data_batch_1"
    path.write_bytes(python2_batch(images, [3, 7, 9]))

    loaded_images, labels = cifar10.read_batch(path)

    assert loaded_images.dtype == np.uint8
    assert np.array_equal(loaded_images, images)
    assert labels.tolist() == [3, 7, 9]


def test_the_batches_tests_write_load_too(tmp_path: Path) -> None:
    folder = write_tiny_cifar10(tmp_path)
    images, labels = cifar10.read_batch(folder / cifar10.TEST_BATCH)
    assert images.shape == (16, 3, 32, 32)
    assert labels.dtype == np.int64


@pytest.mark.parametrize("kind", sorted(crafted_batches(Path("/unused"))))
def test_a_crafted_pickle_is_refused_and_runs_nothing(tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    folder = write_tiny_cifar10(tmp_path / "data")
    (folder / "data_batch_3").write_bytes(crafted_batches(marker)[kind])
    # The unguarded reader would have run it: the test's pickle is what it claims to be.
    assert not marker.exists()

    with pytest.raises(cifar10.DatasetInvalid, match="data_batch_3 is not a CIFAR-10 batch"):
        cifar10.load(cifar10.locate(tmp_path / "data", allow_download=False))

    assert not marker.exists()


def test_the_crafted_pickles_would_run_their_command_if_read_plainly(tmp_path: Path) -> None:
    """What the refusal prevents (so the tests above could fail): plain ``pickle.loads``."""
    marker = tmp_path / "pwned"
    pickle.loads(crafted_batches(marker)["os.system"])
    assert marker.exists()


def test_only_the_three_numpy_names_are_admitted() -> None:
    unpickler = cifar10.BatchUnpickler.__new__(cifar10.BatchUnpickler)
    for module, name in [
        ("os", "system"),
        ("builtins", "eval"),
        ("numpy", "load"),
        ("numpy.lib.npyio", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("subprocess", "Popen"),
    ]:
        with pytest.raises(pickle.UnpicklingError):
            unpickler.find_class(module, name)
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray


@pytest.mark.parametrize(
    "content",
    [
        SECRET.encode(),  # not a pickle at all: pickle's message would quote a byte of it
        pickle.dumps({b"data": SECRET.encode(), b"labels": [1]}, protocol=4),
        pickle.dumps([SECRET.encode()], protocol=4),
    ],
    ids=["text", "wrong-types", "not-a-dict"],
)
def test_a_file_that_is_not_a_batch_is_refused_without_quoting_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data_batch_1"
    path.write_bytes(content)
    with pytest.raises(cifar10.DatasetInvalid) as caught:
        cifar10.read_batch(path)
    assert "data_batch_1 is not a CIFAR-10 batch" in str(caught.value)
    assert SECRET not in str(caught.value)
    assert f"{SECRET[0]!r}" not in str(caught.value)  # pickle's "invalid load key, 'h'"
    # Not chained either: a traceback would print the chained error's message.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__
