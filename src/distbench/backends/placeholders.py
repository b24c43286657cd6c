"""The placeholders a custom command's arguments may hold, filled in per worker by every backend.

MLBench's images took their place in a run as arguments (``--run_id {run_id} --rank {rank}
--hosts {hosts} --backend {backend}``), so commands ported from them do too. Only these names are
replaced, by plain substitution: anything else in braces (a Python snippet's dict, JSON) is left
as it is, and ``str.format``, which would also evaluate ``{x.attr}`` and ``{x[0]}`` in the
caller's text, is never used.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NAMES = ("run_id", "rank", "hosts", "backend")
_PLACEHOLDER = re.compile(r"\{(" + "|".join(NAMES) + r")\}")


def expand(argument: str, values: dict[str, str]) -> str:
    """``argument`` with each ``{run_id}``, ``{rank}``, ``{hosts}``, ``{backend}`` replaced."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], argument)


def expand_command(
    command: Sequence[str], *, run_id: int, rank: str, hosts: Sequence[str], backend: str
) -> list[str]:
    """``command`` with its arguments' placeholders filled in (the program is left as it is).
    ``hosts``: every rank's address, rank 0 first; ``rank`` is text so that a backend can
    pass what the worker's environment expands (Kubernetes' ``$(RANK)``)."""
    values = {
        "run_id": str(run_id),
        "rank": rank,
        "hosts": ",".join(hosts),
        "backend": backend.lower(),
    }
    program, *arguments = command
    return [program, *(expand(argument, values) for argument in arguments)]
