"""bench/RESULTS.md: each benchmark owns one `## ` section and rewrites only that one."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def write_section(heading: str, text: str, results: Path = RESULTS) -> None:
    """Replace the section that starts with `heading` (or append it), keeping every other."""
    current = results.read_text() if results.exists() else "# Benchmark results\n"
    start = current.find(heading)
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        following = current.find("\n## ", start + len(heading))
        rest = current[following + 1 :] if following != -1 else ""
        updated = current[:start] + text + ("\n" + rest if rest else "")
    results.write_text(updated)
