# The one distbench image: `distbench serve` in the server's pod, `python -m distbench.worker` in
# every worker pod the kubernetes backend creates (deploy/kubernetes sets both from this image).
#
#   docker build -t distbench:0.1.0 .
#
# CUDA variant, for `gpu: true` runs with nccl: PyTorch's CUDA wheels carry their own CUDA
# libraries, so only the index changes; the nodes need the NVIDIA driver and device plugin.
#
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 \
#     -t distbench:0.1.0-cu128 .
#
# BASE_IMAGE swaps the base (e.g. an internal mirror of python:3.11-slim).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# The torch scripts/setup installs (tests/deploy checks that the two agree).
ARG TORCH_VERSION=2.13.0

# iproute2: `tc`, for the kubernetes backend's DISTBENCH_K8S_BANDWIDTH=tc mode, whose init container
# shapes a worker pod's egress from this same image.
# Debian's current iproute2: a pinned Debian revision would break at its next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp/matplotlib

# torch first, from PyTorch's own index: distbench asks only for torch>=2.3, which pip would
# otherwise satisfy from PyPI with the multi-GB CUDA build.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
# The kubernetes extra brings the official client the kubernetes backend talks to its API server
# with. Versions: the ranges in pyproject.toml (DL3013 asks for pins, which a local path has not).
# hadolint ignore=DL3013
RUN pip install ".[kubernetes]" \
    && rm -rf /build

# Non-root, with a numeric id so Kubernetes' runAsNonRoot can check it. /var/lib/distbench is the
# data directory (a volume in the cluster; owned here so `docker run` works without one too:
# `docker run -p 8000:8000 -e DISTBENCH_TOKEN=... distbench:0.1.0`; the server refuses 0.0.0.0
# without a token).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/distbench distbench \
    && mkdir -p /var/lib/distbench \
    && chown 10001:10001 /var/lib/distbench
USER 10001:10001
WORKDIR /home/distbench
ENV DISTBENCH_DATA_DIR=/var/lib/distbench \
    DISTBENCH_DATABASE_URL=sqlite:////var/lib/distbench/distbench.db

EXPOSE 8000
ENTRYPOINT ["distbench"]
CMD ["serve", "--host", "0.0.0.0"]
