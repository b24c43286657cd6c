"""Run-scoped tokens: what a run's workers present when they post metrics.

Derived from the server token with HMAC, so nothing extra is stored and a leaked run token
grants no more than posting to that one run (and only while the run is active, then for a
grace time after it ended: see ``api/run_tokens.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import re

# ``run-<id>-<64 hex digits>``. The id is ASCII digits of a bounded length: ``str.isdigit``
# also accepts "²" and "٣", which ``int`` refuses, and ``int`` refuses more than 4,300 digits;
# either was a 500 before authentication.
_RUN_TOKEN = re.compile(r"run-([1-9][0-9]{0,18})-[0-9a-f]{64}", re.ASCII)


def run_token(server_token: str, run_id: int) -> str:
    digest = hmac.new(server_token.encode(), f"run:{run_id}".encode(), hashlib.sha256)
    return f"run-{run_id}-{digest.hexdigest()}"


def run_id_of_token(server_token: str, presented: str) -> int | None:
    """The run a presented run token belongs to, or None if it is not a valid run token."""
    shape = _RUN_TOKEN.fullmatch(presented)
    if shape is None:
        return None
    run_id = int(shape.group(1))
    if hmac.compare_digest(run_token(server_token, run_id).encode(), presented.encode()):
        return run_id
    return None
