"""Writing one script's section of bench/RESULTS.md, leaving the other sections as they are."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(heading: str, section: str, path: Path = RESULTS) -> None:
    """Replace the ``## heading`` section (up to the next ``## ``) with ``section``, or append
    it when the file has none yet."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start = text.find(f"## {heading}\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end == -1 else text[end + 1 :])
    path.write_text(text)
