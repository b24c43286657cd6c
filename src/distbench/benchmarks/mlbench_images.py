"""MLBench's benchmark images and dashboard names, and the distbench task each one runs.

MLBench's client starts a run by naming a Docker image (``image_name``) or, from its dashboard, a
display name; distbench runs tasks, not images. This table is the one place that says which task
an image means, and which goals MLBench's ``light_target`` switches between. An image with no
task here is refused (never replaced by another task), naming the images that do have one.

Torch-free, like the task option modules: the server reads it on every run request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from distbench.errors import InvalidInput

# MLBench's marker for "run my own image and command" (with custom_image_name and
# custom_image_command), and for "my own backend" (with custom_backend).
CUSTOM_IMAGE = "custom_image"
CUSTOM_BACKEND = "custom_backend"


@dataclass(frozen=True, slots=True)
class MlbenchImage:
    """One of MLBench's images and what distbench runs for it."""

    image: str  # the repository, without its tag
    display_name: str  # as MLBench's dashboard and client list it
    task: str | None  # the distbench task; None: distbench has none (a 400)
    # MLBench's goal for the task, the full one and the light one (``light_target``), as the
    # task's options that say when a run has reached it.
    full_goal: dict[str, float] = field(default_factory=dict)
    light_goal: dict[str, float] = field(default_factory=dict)
    # What differs from MLBench's image, told to the user in ``job_metadata["warnings"]``.
    caveat: str | None = None


IMAGES = (
    MlbenchImage(
        image="mlbench/pytorch-cifar10-resnet20-all-reduce",
        display_name="PyTorch Cifar-10 ResNet-20",
        task="resnet20-cifar10",
        # MLBench's task 1a: 80 % top-1 validation accuracy; light: 70 %.
        full_goal={"target_accuracy": 0.80},
        light_goal={"target_accuracy": 0.70},
    ),
    MlbenchImage(
        image="mlbench/pytorch-cifar10-resnet20-ddp",
        display_name="PyTorch Cifar-10 ResNet-20 (DDP)",
        task="resnet20-cifar10",
        full_goal={"target_accuracy": 0.80},
        light_goal={"target_accuracy": 0.70},
        caveat="MLBench's DDP image wraps the model in DistributedDataParallel; distbench's "
        "resnet20-cifar10 averages the gradients with one all-reduce per step (same model, "
        "data and goal; no overlap of communication with the backward pass)",
    ),
    MlbenchImage(
        image="mlbench/pytorch-epsilon-logistic-regression-all-reduce",
        display_name="PyTorch Linear Logistic Regression",
        task="logreg",
        # MLBench's task 2a: 89 % validation accuracy on epsilon; light: 80 %.
        full_goal={"target_accuracy": 0.89},
        light_goal={"target_accuracy": 0.80},
    ),
    MlbenchImage(
        image="mlbench/pytorch-backend-benchmark",
        display_name="PyTorch Distributed Backend benchmarking",
        task="allreduce",  # MLBench's task 0: no accuracy goal
    ),
    MlbenchImage(
        image="mlbench/pytorch-wikitext2-lstm-all-reduce",
        display_name="PyTorch Language Modeling (AWD-LSTM)",
        task=None,
    ),
    MlbenchImage(
        image="mlbench/pytorch-wmt16-gnmt-all-reduce",
        display_name="PyTorch Machine Translation GNMT",
        task=None,
    ),
    MlbenchImage(
        image="mlbench/pytorch-wmt17-transformer-all-reduce",
        display_name="PyTorch Machine Translation Transformer",
        task=None,
    ),
    MlbenchImage(
        image="mlbench/tensorflow-cifar10-resnet",
        display_name="Tensorflow Cifar-10 ResNet-20 Open-MPI",
        task=None,
    ),
)


def _repository(image_name: str) -> str:
    """``mlbench/x:latest`` -> ``mlbench/x``: any tag names the same task."""
    name = image_name.strip()
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def find(image_name: str) -> MlbenchImage | None:
    """The table's entry for an image (any tag) or a display name (any case); None if unknown."""
    repository = _repository(image_name)
    folded = image_name.strip().casefold()
    for entry in IMAGES:
        if entry.image == repository or entry.display_name.casefold() == folded:
            return entry
    return None


def lookup(image_name: str, *, installed_tasks: Iterable[str]) -> MlbenchImage:
    """The entry for ``image_name`` whose task this server has, or a 400 naming those it has."""
    installed = set(installed_tasks)
    entry = find(image_name)
    if entry is not None and entry.task in installed:
        return entry
    runnable = [f"{e.image}:latest ({e.display_name})" for e in IMAGES if e.task in installed]
    why = (
        "is not one of MLBench's images"
        if entry is None
        else (
            "has no distbench task"
            if entry.task is None
            else f"needs the task {entry.task!r}, which this server does not have"
        )
    )
    raise InvalidInput(
        f"image_name={image_name!r} {why}. distbench runs these MLBench images: "
        f"{', '.join(runnable)}; or send image_name={CUSTOM_IMAGE} with custom_image_command "
        "to run your own command (on a server started with --allow-commands)",
        details={
            "errors": [{"field": "image_name", "message": why}],
            "images": {f"{e.image}:latest": e.task for e in IMAGES if e.task in installed},
        },
    )
