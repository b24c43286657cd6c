"""Running the system tools (ip, tc) that set limits, with errors that say what failed."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class CommandFailed(RuntimeError):
    pass


def run(args: Sequence[str], *, check: bool = True) -> str:
    """Run ``args``; on failure raise ``CommandFailed`` with the command and its stderr."""
    # Arguments are built by this package from validated values, never from a shell string.
    result = subprocess.run(  # noqa: S603
        list(args), capture_output=True, text=True, check=False, timeout=30
    )
    if check and result.returncode != 0:
        raise CommandFailed(
            f"`{' '.join(args)}` failed: {result.stderr.strip() or result.returncode}"
        )
    return result.stdout
