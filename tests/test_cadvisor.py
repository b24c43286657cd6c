"""cAdvisor's metric names have one owner, ``distbench.cadvisor``: a second spelling of one in
``src/`` (Python, the dashboard's JavaScript or its templates) fails here."""

from __future__ import annotations

import re
from pathlib import Path

from distbench import cadvisor

SRC = Path(__file__).resolve().parents[1] / "src" / "distbench"
OWNER = SRC / "cadvisor.py"
# Any cAdvisor container metric, not only today's six: a new one belongs in the owner too.
CADVISOR_NAME = re.compile(r"container_(?:cpu|memory|network|fs|spec)_\w+")
CHECKED_SUFFIXES = {".py", ".js", ".html"}


def test_no_module_but_the_owner_spells_a_cadvisor_name() -> None:
    files = [p for p in sorted(SRC.rglob("*")) if p.suffix in CHECKED_SUFFIXES and p != OWNER]
    assert any(p.suffix == ".js" for p in files)  # the dashboard's scripts are looked at
    spelled = [
        f"{path.relative_to(SRC)}:{number}: {match.group()}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        for match in CADVISOR_NAME.finditer(line)
    ]
    assert spelled == [], "import the name from distbench.cadvisor instead"


def test_the_pattern_catches_every_name_the_owner_defines() -> None:
    assert len(set(cadvisor.RESOURCE_METRICS)) == 6
    for name in cadvisor.RESOURCE_METRICS:
        assert CADVISOR_NAME.fullmatch(name), name
        assert name in OWNER.read_text()


def test_counters_are_the_names_ending_in_total() -> None:
    counters = {name for name in cadvisor.RESOURCE_METRICS if cadvisor.is_counter(name)}
    assert counters == set(cadvisor.RESOURCE_METRICS) - {cadvisor.MEMORY_BYTES}
