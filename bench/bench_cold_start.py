"""Cold models under load: the soak's mix with default settings against every model preloaded.

The soak (bench/bench_soak.py) as its own `hfbot run` process, twice per
round, with the pool's defaults (memory budget `auto`, no count limit, ONNX
auto with an empty export cache, so every encoder model is exported on its
first use): once from cold, models loading and exporting while requests
arrive, and once with one request per model command answered before the
clock starts. Rounds alternate which goes first. Reported: p50 and p95 of the
latency to the first answer (medians over rounds), answered requests and
usage rows against the model requests sent (a request whose row is lost
shows as a gap). Target: cold p50 at most 1.5 times the preloaded p50, no
usage row lost. Before the memory budget and the loading thread, the default
count limit of 3 models gave p50 46 s against 0.2 s preloaded (RELIABILITY.md).

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_cold_start` (3 rounds of
three runs of 600 requests at 15 a second: about 10 minutes); `--write` also replaces the "Cold
models" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
from pathlib import Path

from bench.bench_soak import Report, soak
from bench.results import write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTION = "## Cold models"
# default: a first start ever (models cold, no ONNX export on disk); restart: models cold,
# their exports on disk from an earlier run (what every later start of `hfbot run` finds);
# preloaded: every model loaded and exported before the clock starts.
MODES = ("default", "restart", "preloaded")


async def one_run(
    mode: str,
    requests: int,
    users: int,
    groups: int,
    rate: float,
    models_dir: Path,
    seed: int,
    exports: Path,
) -> Report:
    with tempfile.TemporaryDirectory() as workdir:
        return await soak(
            requests,
            users,
            groups,
            rate,
            Path(workdir),
            models_dir,
            seed=seed,
            warm_up=mode == "preloaded",
            HFBOT_ENGINE_ONNX="auto",
            # Preloaded means exported too: its exports start at once and the warm-up waits.
            HFBOT_ENGINE_ONNX_QUIET_S="0" if mode == "preloaded" else "2",
            HFBOT_ENGINE_ONNX_CACHE_DIR=str(
                exports if mode != "default" else Path(workdir) / "onnx"
            ),
        )


async def rounds(
    count: int, requests: int, users: int, groups: int, rate: float, models_dir: Path
) -> dict[str, list[Report]]:
    """`count` rounds, each mode once per round: default and preloaded alternate which goes
    first; restart follows preloaded, on the exports preloaded left on disk."""
    runs: dict[str, list[Report]] = {mode: [] for mode in MODES}
    for number in range(count):
        pair = ("default", "preloaded") if number % 2 == 0 else ("preloaded", "default")
        order = [
            m for first in pair for m in ((first, "restart") if first == "preloaded" else (first,))
        ]
        with tempfile.TemporaryDirectory() as exports:
            for mode in order:
                report = await one_run(
                    mode, requests, users, groups, rate, models_dir, 18 + number, Path(exports)
                )
                runs[mode].append(report)
                print(
                    f"round {number + 1} {mode}: p50 {report.quantile(0.5) * 1000:.0f} ms, "
                    f"p95 {report.quantile(0.95) * 1000:.0f} ms, answered {report.answered}/"
                    f"{report.requests}, usage rows {report.usage_rows}/{report.model_requests}",
                    flush=True,
                )
    return runs


def _median_ms(reports: list[Report], q: float) -> float:
    return statistics.median(report.quantile(q) for report in reports) * 1000


def markdown(runs: dict[str, list[Report]], rate: float) -> str:
    first = runs["default"][0]
    lines = []
    for mode in MODES:
        reports = runs[mode]
        answered = sum(r.answered for r in reports)
        sent = sum(r.requests for r in reports)
        rows = sum(r.usage_rows for r in reports)
        model_requests = sum(r.model_requests for r in reports)
        errors = sum(r.errors for r in reports)
        lines.append(
            f"| {mode} | {_median_ms(reports, 0.5):,.0f} ms | {_median_ms(reports, 0.95):,.0f} ms "
            f"| {answered:,} / {sent:,} | {rows:,} / {model_requests:,} | {errors} |"
        )
    preloaded = _median_ms(runs["preloaded"], 0.5)
    ratio = _median_ms(runs["default"], 0.5) / preloaded
    restart_ratio = _median_ms(runs["restart"], 0.5) / preloaded
    per_round = ", ".join(
        f"{d.quantile(0.5) * 1000:.0f} / {r.quantile(0.5) * 1000:.0f} / "
        f"{p.quantile(0.5) * 1000:.0f} ms"
        for d, r, p in zip(runs["default"], runs["restart"], runs["preloaded"], strict=True)
    )
    return f"""{SECTION}

`python -m bench.bench_cold_start` on {platform.machine()}, {os.cpu_count()} cores, Python
{platform.python_version()}: the soak's mix ({first.users} people, {first.groups} groups,
{first.requests} requests at {rate:.0f} a second, open loop) through `hfbot run` as its own
process, with the pool's default settings (memory budget auto, no count limit, ONNX auto)
and tiny models; each round runs it on a first start (models cold, no ONNX export on
disk), a restart (models cold, exports on disk from an earlier run) and with every model
preloaded (one request per model command answered before the clock starts); medians of
{len(runs["default"])} rounds.

| run | p50 | p95 | answered | usage rows / model requests | errors |
|---|---|---|---|---|---|
{chr(10).join(lines)}

p50 against preloaded p50: first start {ratio:.2f}×, restart {restart_ratio:.2f}× (target
≤ 1.5×). Per round (first start / restart / preloaded p50): {per_round}.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--rate", type=float, default=15.0, help="requests a second")
    parser.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/hfbot/demo-models")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    runs = asyncio.run(
        rounds(args.rounds, args.requests, args.users, args.groups, args.rate, args.models_dir)
    )
    text = markdown(runs, args.rate)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
