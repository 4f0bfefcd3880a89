"""Each benchmark rewrites only its own section of bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench.results import write_section


def test_a_benchmark_replaces_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\nold a\n\n## B\n\nold b\n")
    write_section("## A", "## A\n\nnew a\n", results)
    write_section("## C", "## C\n\nnew c\n", results)
    assert (
        results.read_text()
        == "# Benchmark results\n\n## A\n\nnew a\n\n## B\n\nold b\n\n## C\n\nnew c\n"
    )
