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


def cpu_times(stat: Path = Path("/proc/stat")) -> tuple[int, int]:
    """(stolen, total) CPU time so far, in clock ticks, of every core; (0, 0) where the
    system does not say. Stolen time is what the host gave other guests while this
    machine wanted its CPU: a run that lost some was measured on fewer cores than the
    machine has, and a bench near its limit reads it as a much slower bot."""
    try:
        fields = stat.read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    ticks = [int(field) for field in fields]
    stolen = ticks[7] if len(ticks) > 7 else 0
    return stolen, sum(ticks[:8])


def stolen_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time the host took between two `cpu_times()`, 0 to 1."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total > 0 else 0.0
