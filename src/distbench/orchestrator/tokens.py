"""Run-scoped tokens: what a run's workers present when they post metrics.

Derived from the server token with HMAC, so nothing extra is stored and a leaked run token
grants no more than posting to that one run.
"""

from __future__ import annotations

import hashlib
import hmac


def run_token(server_token: str, run_id: int) -> str:
    digest = hmac.new(server_token.encode(), f"run:{run_id}".encode(), hashlib.sha256)
    return f"run-{run_id}-{digest.hexdigest()}"


def run_id_of_token(server_token: str, presented: str) -> int | None:
    """The run a presented run token belongs to, or None if it is not a valid run token."""
    parts = presented.split("-", 2)
    if len(parts) != 3 or parts[0] != "run" or not parts[1].isdigit():
        return None
    run_id = int(parts[1])
    if hmac.compare_digest(run_token(server_token, run_id), presented):
        return run_id
    return None
