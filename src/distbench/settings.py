"""The one settings class, built once (by the CLI or a test) and passed down."""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})
ENV_PREFIX = "DISTBENCH_"
# A token is also the HMAC key of every run token: an empty or short one can be guessed.
MIN_TOKEN_CHARS = 16
MAKE_A_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105


def without_server_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` less the server's ``DISTBENCH_`` settings, for a process the server starts
    (the warm launcher, a worker): the server token among them would let any worker's code
    act as the server, and show in that process's ``/proc/PID/environ``."""
    return {key: value for key, value in environ.items() if not key.startswith(ENV_PREFIX)}


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("distbench", appauthor=False))


def default_database_url() -> str:
    return f"sqlite:///{default_data_dir() / 'distbench.db'}"


class Settings(BaseSettings):
    """Everything the server can be told. Environment variables use the prefix ``DISTBENCH_``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    database_url: str = Field(default_factory=default_database_url)
    data_dir: Path = Field(default_factory=default_data_dir)
    data_root: Path | None = Field(
        default=None,
        description="The only folder whose files a run's path options may name (data sets); "
        "default: <data_dir>/datasets.",
    )
    token: SecretStr | None = None
    insecure: bool = False
    release: str = Field(default="distbench", pattern=r"^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$")
    backend: Literal["local", "kubernetes"] = "local"
    collect_interval_s: float = Field(default=2.0, gt=0)
    start_timeout_s: float = Field(default=120.0, gt=0)
    # Limits on what one request may carry, so a client cannot exhaust the server's memory.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_batch_points: int = Field(default=10_000, gt=0)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql")):
            raise ValueError(
                f"unsupported database URL {url!r}: use sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST:PORT/DB"
            )
        return url

    worker_python: str = Field(
        default_factory=lambda: sys.executable,
        description="The Python that runs workers (it must have distbench and torch installed).",
    )
    warm_launcher: bool = Field(
        default=True,
        description="Fork workers from a process that has imported torch already (fast starts).",
    )
    advertise_url: str | None = Field(
        default=None,
        validate_default=True,
        description="The URL workers use to reach this server (default: derived).",
    )

    @field_validator("advertise_url", mode="after")
    @classmethod
    def _reachable_from_pods(cls, url: str | None, info: ValidationInfo) -> str | None:
        # Derived from host and port, it would name this server's own loopback address, which
        # no worker pod can reach: its metrics would be lost.
        if info.data.get("backend") == "kubernetes" and not url:
            raise ValueError(
                "backend=kubernetes needs the URL worker pods reach this server at (its "
                "Service): set DISTBENCH_ADVERTISE_URL (or serve --advertise-url)"
            )
        return url

    queue_runs: bool = Field(
        default=False,
        description="A run posted while another is active waits its turn (QUEUED) instead of "
        "a 409, unless its request says queue: false. For clients that cannot ask to queue "
        "(MLBench's, whose `mlbench run NAME 2 4 8` posts three runs at once).",
    )
    allow_commands: bool = Field(
        default=False,
        description="Let token holders start runs of their own commands (arbitrary code as the "
        "server's user). Needs a token.",
    )

    @model_validator(mode="after")
    def _commands_need_a_token(self) -> Settings:
        if self.allow_commands and self.token is None:
            raise ValueError(
                "allow_commands=true needs a token: custom commands run arbitrary code, so only "
                "callers holding --token (DISTBENCH_TOKEN) may start them"
            )
        return self

    # -- tokens (api/deps.py checks them; the README's "Security model" says who may do what) ---
    token_file: Path | None = Field(
        default=None,
        description="A file holding the token, read once at start (surrounding whitespace "
        "stripped): unlike --token, not visible in ps.",
    )
    protect_reads: bool = Field(
        default=False,
        description="Reads need the server token too: every GET under /api/ but /api/health, "
        "and /metrics. Needs a token.",
    )
    run_token_grace_s: float = Field(
        default=300.0,
        ge=0,
        description="Seconds after a run ended during which its workers' run token may still "
        "post (late points); then 403.",
    )

    @model_validator(mode="before")
    @classmethod
    def _read_token_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("token_file") in (None, ""):
            return data
        if data.get("token") is not None:
            raise ValueError(
                "give the token once: token_file (--token-file, DISTBENCH_TOKEN_FILE) or token "
                "(--token, DISTBENCH_TOKEN), not both"
            )
        path = Path(data["token_file"])
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot read the token file {path}: {reason}") from None
        return {**data, "token": text.strip()}

    @field_validator("token", mode="after")
    @classmethod
    def _token_hard_to_guess(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        value = token.get_secret_value().strip()
        # The token travels in an HTTP header, which carries visible ASCII only.
        if len(value) < MIN_TOKEN_CHARS or not (value.isascii() and value.isprintable()):
            raise ValueError(
                f"the token must be at least {MIN_TOKEN_CHARS} visible ASCII characters: an "
                "empty or short one can be guessed, and run tokens with it. Make one with: "
                f"{MAKE_A_TOKEN}"
            )
        return SecretStr(value)

    @model_validator(mode="after")
    def _protected_reads_need_a_token(self) -> Settings:
        if self.protect_reads and self.token is None:
            raise ValueError(
                "protect_reads=true needs a token: reads then need the one given with "
                "--token-file (DISTBENCH_TOKEN_FILE) or DISTBENCH_TOKEN"
            )
        return self

    # -- the kubernetes backend (backends/kubernetes/manifests.py says what each one becomes) ---
    namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace of the worker Jobs (default: the kubeconfig's, or the server "
        "pod's own namespace in a cluster).",
    )
    worker_image: str | None = Field(
        default=None,
        validate_default=True,
        description="Container image of the worker pods (kubernetes backend).",
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file to reach the cluster with (default: in-cluster config, "
        "then ~/.kube/config).",
    )
    k8s_bandwidth: Literal["annotations", "tc"] = Field(
        default="annotations",
        description="How worker pods' max_bandwidth is enforced: pod bandwidth annotations "
        "(the CNI must chain the bandwidth plugin) or tc in an init container with NET_ADMIN.",
    )

    @field_validator("worker_image", mode="after")
    @classmethod
    def _image_for_kubernetes(cls, image: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("backend") == "kubernetes" and not image:
            raise ValueError(
                "backend=kubernetes needs the workers' container image: set "
                "DISTBENCH_WORKER_IMAGE (or serve --worker-image)"
            )
        return image

    @property
    def run_data_root(self) -> Path:
        """Where a run's path options must lie (``benchmarks.paths``)."""
        return self.data_root if self.data_root is not None else self.data_dir / "datasets"

    @property
    def advertised_url(self) -> str:
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
