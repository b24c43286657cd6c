"""The states a run goes through: the one spelling that the store, the orchestrator, the API,
the client and the command line share.

The names cross processes (stored in the database, served as JSON, compared by clients and by
MLBench's own tools), so a second spelling somewhere would drift silently: a typo in a literal
is just another string. A ``StrEnum`` compares equal to its text, so stored rows and JSON keep
the plain names.

Lifecycle: [QUEUED ->] INITIALIZED -> STARTED -> FINISHED | FAILED | ABORTED.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    # Waiting for its turn behind the active run: neither active nor ended (the one-active-run
    # index leaves it out).
    QUEUED = "QUEUED"
    INITIALIZED = "INITIALIZED"
    STARTED = "STARTED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    ABORTED = "ABORTED"

    @property
    def is_active(self) -> bool:
        return self in ACTIVE_STATES

    @property
    def has_ended(self) -> bool:
        return self in END_STATES


# Tuples, in lifecycle order: SQL built from them (the one-active-run index, the check
# constraint) comes out the same in every process, where a set's order would vary.
ACTIVE_STATES: tuple[RunState, ...] = (RunState.INITIALIZED, RunState.STARTED)
END_STATES: tuple[RunState, ...] = (RunState.FINISHED, RunState.FAILED, RunState.ABORTED)
