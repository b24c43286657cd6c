"""The README documents every setting and every CLI command (as datasette's test_docs does), and
its links, like the API reference's, lead to files in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from distbench.cli import app
from distbench.settings import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
# A markdown link's target: [text](target), up to a closing parenthesis or a fragment.
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme(field: str) -> None:
    assert f"DISTBENCH_{field.upper()}" in README


def _commands() -> list[str]:
    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        sub = getattr(command, "commands", None)
        names += [f"{name} {child}" for child in sub] if sub else [name]
    return sorted(names)


@pytest.mark.parametrize("command", _commands())
def test_every_cli_command_is_in_the_readme(command: str) -> None:
    assert f"distbench {command}" in README


@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_every_relative_link_leads_to_a_file_of_the_repository(page: str) -> None:
    text = (ROOT / page).read_text()
    targets = [t for t in LINK.findall(text) if "://" not in t and not t.startswith("mailto:")]

    assert targets, f"{page} links to no file: the check would check nothing"
    assert [t for t in targets if not (ROOT / page).parent.joinpath(t).exists()] == []


def test_readme_points_at_the_api_reference_and_at_nothing_outside_the_repository() -> None:
    # SPEC.md was a document beside the repository, never in it: a reader could not follow it.
    assert "](docs/api.md)" in README
    assert "SPEC.md" not in README


def test_the_code_cites_the_reference_in_the_repository() -> None:
    # A docstring that says "as SPEC.md asks" sends a maintainer to a file they do not have.
    citing = [
        str(path.relative_to(ROOT))
        for folder in ("src", "tests", "docs", "bench", "scripts", "deploy")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.is_file()
        and path.suffix in {".py", ".md", ".js", ".html", ".yaml", ".sh"}
        and path != Path(__file__)
        and "SPEC.md" in path.read_text(errors="replace")
    ]

    assert citing == []
