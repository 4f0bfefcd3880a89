"""A bounded run of the soak (bench/bench_soak.py): hundreds of requests, all answered, no errors.

The full soak (10,000 requests from 500 people) is `python -m bench.bench_soak`;
its figures are in bench/RESULTS.md and RELIABILITY.md.
"""

from __future__ import annotations

from pathlib import Path

from bench.bench_soak import soak


async def test_three_hundred_mixed_requests_from_a_hundred_people_are_all_answered(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    report = await soak(
        300, users=100, groups=20, rate=15, workdir=tmp_path, models_dir=tiny_models_dir, drain_s=90
    )

    assert report.answered == report.requests == 300
    assert (report.error_answers, report.failed_calls, report.log_errors) == (0, 0, 0)
    assert report.rss_growth_mib < 64, report.rss_mib
