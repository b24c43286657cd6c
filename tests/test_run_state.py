"""Run states have one owner, ``distbench.run_state``: every layer compares and stores its
members, and no other module spells a state name as a string."""

from __future__ import annotations

import json

from distbench import client, run_state
from distbench.run_state import RunState
from tests.source_literals import SRC, spellings_outside, string_literals

STATE_NAMES = {state.value for state in RunState}
# Migrations are history: their SQL stays as it was written.
MIGRATIONS = {
    path.relative_to(SRC).as_posix() for path in (SRC / "store" / "migrations").rglob("*.py")
}


def test_no_module_but_the_owner_spells_a_state_name() -> None:
    second_spellings = spellings_outside(
        STATE_NAMES.__contains__, owners={"run_state.py", *MIGRATIONS}
    )

    assert second_spellings == []


def test_the_scan_finds_a_state_name_where_one_is_spelled() -> None:
    # Guards the test above against a scan that finds nothing at all.
    in_owner = {value for _line, value in string_literals(SRC / "run_state.py")}

    assert in_owner >= STATE_NAMES
    assert MIGRATIONS, "no migrations found: the exemption above exempts nothing"


def test_every_state_is_queued_active_or_ended_and_only_one_of_them() -> None:
    groups = [{RunState.QUEUED}, set(run_state.ACTIVE_STATES), set(run_state.END_STATES)]

    assert set().union(*groups) == set(RunState)
    assert sum(len(group) for group in groups) == len(RunState)
    assert [state for state in RunState if state.is_active] == list(run_state.ACTIVE_STATES)
    assert [state for state in RunState if state.has_ended] == list(run_state.END_STATES)


def test_a_state_is_its_name_in_comparisons_json_and_text() -> None:
    assert RunState.FINISHED == "FINISHED"
    assert RunState("QUEUED") is RunState.QUEUED
    assert json.dumps({"state": RunState.ABORTED}) == '{"state": "ABORTED"}'
    assert f"run 3 {RunState.FAILED}" == "run 3 FAILED"


def test_the_clients_public_state_sets_are_the_owners_as_plain_text() -> None:
    assert client.RUN_STATES == STATE_NAMES
    assert {"INITIALIZED", "STARTED"} == client.ACTIVE_STATES
    assert {"FINISHED", "FAILED", "ABORTED"} == client.END_STATES
    everything = client.RUN_STATES | client.ACTIVE_STATES | client.END_STATES
    # Plain str, so error messages and reprs show the names, not enum members.
    assert {type(name) for name in everything} == {str}
