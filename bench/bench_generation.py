"""Generation throughput through the bot's pool: continuous batching against naive and micro-batching.

A distilgpt2-size GPT-2 (6 layers, 768 hidden, 12 heads, 50257-token
vocabulary) with random weights, built by `bot.offline.demo_models` at its BASE
scale: the cost of a forward pass does not depend on whether the weights are
trained, and its whole-word tokenizer decodes every generated id to a word, so
streaming sends text at every step as it would with a trained tokenizer. Users
arrive 100 ms apart, each with their own temperature, asking for 32 new tokens
with sampling on; no request stops early (the model has no end-of-sequence
token), so every engine produces the same number of tokens.

Engines compared, over a few interleaved rounds (medians reported), all but naive
through `PipelinePool.submit`, as the bot calls it:
- continuous: the pool's continuous-batching path, every user's own parameters in one batch;
- naive: one `pipeline(prompt)` per request in `run_in_executor`, one worker thread;
- micro-batching, split by params: the pool with `generation_engine=micro-batching`;
  requests only share a `pipeline(list, batch_size=n)` call when their parameters are
  equal, so per-user temperatures make every batch a batch of one;
- micro-batching, same params: every user on one temperature (a static batcher's best case).
Then the cost of streaming: 8 users at once, streaming against not streaming, and the
time to first token.

`--line` measures the place in line instead: 32 users at once, two of whom send 8 requests
each (their bursts first), through the pool with the engine's fair line (the default
`generation_max_running`) against the same pool with no line (`generation_max_running=0`,
every request straight into transformers' manager, as before the line existed), rounds
interleaved: the p50 latency of the 30 single-request users, and tokens/s.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_generation` (about 5 minutes on
2 cores); `--write` also replaces the "Generation engine" section of bench/RESULTS.md
(with `--line`: the "Place in line for generation" section).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import ceil
from pathlib import Path
from typing import Any

import torch
from transformers import pipeline

from bench.results import write_section
from bot.config import Settings
from bot.engine.fair_turns import OWNER_SHARE, Caller
from bot.engine.pool import PipelinePool
from bot.offline.demo_models import BASE, tiny_gpt2

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEW_TOKENS = 32
STREAM_USERS = 8
SAMPLING = {"do_sample": True, "top_k": 50, "top_p": 0.95}
PROMPTS = [
    "the book is awesome and",
    "once upon a time there was a small robot who",
    "the weather today is sunny and warm so we",
    "alice lives in london with her cat and",
    "the team won the match in the last minute because",
    "a new phone was released with a faster chip that",
    "every morning the robot read a new story about",
    "the government announced a new law today about",
]
NOISE_NOTE = (
    "On these 2 cores, an earlier run made while other jobs shared them varied by up to 4x "
    "between back-to-back runs of one configuration (OpenMP intra-op threads spin-wait when "
    "the cores are oversubscribed), so read the ranges and compare engines within a round "
    "rather than across runs."
)
SECTION = "## Generation engine"
LINE_SECTION = "## Place in line for generation"
LINE_USERS = 32
BURSTS = 2
BURST_SIZE = 8


@dataclass
class Run:
    """One engine serving one arrival pattern: per-request latencies and the makespan."""

    latencies: list[float]
    makespan: float
    first_token: list[float]

    @property
    def tokens_per_s(self) -> float:
        return len(self.latencies) * NEW_TOKENS / self.makespan

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)


Serve = Callable[[str, Mapping[str, Any], "Callable[[str], None] | None"], Awaitable[Any]]


async def arrive(
    serve: Serve, users: int, gap_s: float, temperatures: list[float], stream: bool = False
) -> Run:
    """Users arrive `gap_s` apart; each request's latency runs from its own arrival."""
    start = time.perf_counter()
    first_token: list[float] = []

    async def user(index: int) -> float:
        await asyncio.sleep(index * gap_s)
        arrived = time.perf_counter()
        seen: list[float] = []

        def on_text(_text: str) -> None:
            if not seen:
                seen.append(time.perf_counter() - arrived)

        params = SAMPLING | {"max_new_tokens": NEW_TOKENS, "temperature": temperatures[index]}
        await serve(PROMPTS[index % len(PROMPTS)], params, on_text if stream else None)
        first_token.extend(seen)
        return time.perf_counter() - arrived

    latencies = await asyncio.gather(*(user(i) for i in range(users)))
    return Run(list(latencies), time.perf_counter() - start, first_token)


def pool_with(pipe: Any, engine: str, **overrides: Any) -> PipelinePool:
    """The bot's own pool, with this bench's model standing in for a Hub model."""
    settings = Settings(
        _env_file=None,
        generation_engine=engine,
        pool_max_wait_ms=5,
        pool_max_batch_size=16,
        generation_kv_cache_tokens=8192,
        **overrides,
    )
    return PipelinePool(settings, loader=lambda task, model_id: pipe)


async def bench(rounds: int, users: int, gap_s: float, models: Path) -> dict[str, list[Run]]:
    gpt2 = tiny_gpt2(models, BASE, end_of_sequence=False)
    pipe = pipeline("text-generation", model=str(gpt2), device="cpu")
    executor = ThreadPoolExecutor(max_workers=1)
    continuous_pool = pool_with(pipe, "continuous")
    batching_pool = pool_with(pipe, "micro-batching")
    loop = asyncio.get_running_loop()

    async def naive(
        prompt: str, params: Mapping[str, Any], _on_text: Callable[[str], None] | None
    ) -> Any:
        return await loop.run_in_executor(executor, lambda: pipe(prompt, **params))

    def through(pool: PipelinePool) -> Serve:
        async def serve(
            prompt: str, params: Mapping[str, Any], on_text: Callable[[str], None] | None
        ) -> Any:
            return await pool.submit(
                "text-generation", "bench-gpt2", prompt, params, on_text=on_text
            )

        return serve

    continuous, batching = through(continuous_pool), through(batching_pool)
    people = max(users, STREAM_USERS)
    own = [round(0.5 + 1.0 * i / (people - 1), 3) for i in range(people)]
    same = [0.8] * people
    scenarios: dict[str, Callable[[], Awaitable[Run]]] = {
        "continuous": lambda: arrive(continuous, users, gap_s, own),
        "naive": lambda: arrive(naive, users, gap_s, own),
        "static_split": lambda: arrive(batching, users, gap_s, own),
        "static_same": lambda: arrive(batching, users, gap_s, same),
        "stream_off": lambda: arrive(continuous, STREAM_USERS, 0.0, own),
        "stream_on": lambda: arrive(continuous, STREAM_USERS, 0.0, own, stream=True),
    }
    await arrive(continuous, 2, 0.0, own)
    await arrive(naive, 1, 0.0, own)
    await arrive(batching, 2, 0.0, same)
    runs: dict[str, list[Run]] = {name: [] for name in scenarios}
    try:
        for round_index in range(rounds):
            for name, scenario in scenarios.items():
                run = await scenario()
                runs[name].append(run)
                print(
                    f"round {round_index + 1} {name:13s} {run.tokens_per_s:6.1f} tok/s "
                    f"p50 {run.p50:5.2f} s",
                    flush=True,
                )
    finally:
        await continuous_pool.close()
        await batching_pool.close()
        executor.shutdown()
    return runs


@dataclass
class LineRun:
    """One arrival of bursts and single requests: who waited how long, and the makespan."""

    singles: list[float]
    bursts: list[float]
    makespan: float

    @property
    def tokens_per_s(self) -> float:
        return (len(self.singles) + len(self.bursts)) * NEW_TOKENS / self.makespan


async def bursts_and_singles(pool: PipelinePool, temperatures: list[float]) -> LineRun:
    """Everyone at once: the burst owners' requests submitted first, then one per other user."""
    start = time.perf_counter()

    async def one(user: int, prompt: str) -> float:
        params = SAMPLING | {"max_new_tokens": NEW_TOKENS, "temperature": temperatures[user]}
        await pool.submit(
            "text-generation", "bench-gpt2", prompt, params, caller=Caller(owner=f"user{user}")
        )
        return time.perf_counter() - start

    burst = [
        one(user, PROMPTS[(user + n) % len(PROMPTS)])
        for user in range(BURSTS)
        for n in range(BURST_SIZE)
    ]
    singles = [one(user, PROMPTS[user % len(PROMPTS)]) for user in range(BURSTS, LINE_USERS)]
    done = await asyncio.gather(*burst, *singles)
    return LineRun(list(done[len(burst) :]), list(done[: len(burst)]), time.perf_counter() - start)


async def bench_line(rounds: int, models: Path) -> dict[str, list[LineRun]]:
    gpt2 = tiny_gpt2(models, BASE, end_of_sequence=False)
    pipe = pipeline("text-generation", model=str(gpt2), device="cpu")
    pools = {
        "line": pool_with(pipe, "continuous"),
        "no_line": pool_with(pipe, "continuous", generation_max_running=0),
    }
    temperatures = [round(0.5 + 1.0 * i / (LINE_USERS - 1), 3) for i in range(LINE_USERS)]
    runs: dict[str, list[LineRun]] = {name: [] for name in pools}
    try:
        for pool in pools.values():  # load the model, start the engine
            await pool.submit("text-generation", "bench-gpt2", PROMPTS[0], {"max_new_tokens": 4})
        for round_index in range(rounds):
            order = list(pools) if round_index % 2 == 0 else list(reversed(pools))
            for name in order:
                run = await bursts_and_singles(pools[name], temperatures)
                runs[name].append(run)
                print(
                    f"round {round_index + 1} {name:8s} {run.tokens_per_s:6.1f} tok/s "
                    f"singles p50 {statistics.median(run.singles):5.2f} s",
                    flush=True,
                )
    finally:
        for pool in pools.values():
            await pool.close()
    return runs


def report_line(runs: dict[str, list[LineRun]], rounds: int, load: tuple[float, float]) -> str:
    def med(name: str, value: Callable[[LineRun], float]) -> float:
        return statistics.median(value(run) for run in runs[name])

    def singles(name: str) -> float:
        return med(name, lambda r: statistics.median(r.singles))

    def tps(name: str) -> float:
        return med(name, lambda r: r.tokens_per_s)

    def bursts_done(name: str) -> float:
        return med(name, lambda r: max(r.bursts))

    def ratios(value: Callable[[LineRun], float]) -> str:
        values = [value(a) / value(b) for a, b in zip(runs["line"], runs["no_line"], strict=True)]
        listed = ", ".join(f"{v:.2f}" for v in values)
        return f"{listed} (median {statistics.median(values):.2f}x)"

    limit = Settings(_env_file=None, generation_kv_cache_tokens=8192).generation_running_limit
    lines = [
        LINE_SECTION,
        "",
        f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, torch "
        f"{torch.__version__} with {torch.get_num_threads()} intra-op threads (the pool's "
        "default: every usable core but one), no GPU. Model: the distilgpt2-size GPT-2 of the "
        "section above.",
        f"Workload: {LINE_USERS} users at once, {BURSTS} of them sending {BURST_SIZE} requests "
        f"each (submitted first), the other {LINE_USERS - BURSTS} one each; every user their own "
        f"temperature, {NEW_TOKENS} new tokens, sampling on, no early stop; 8192-token KV cache.",
        f"Compared in one process, rounds interleaved (order alternating), medians of {rounds}: "
        f"the pool's fair line (default `generation_max_running`: {limit} running, one person "
        "at most an eighth) against no line (`generation_max_running=0`: every request straight into "
        "transformers' manager, as before). Latency from the common start to each answer. "
        f"1-minute load average {load[0]:.1f} before the run, {load[1]:.1f} after.",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_generation --line --write`.",
        "",
        "| | fair line | no line | line ÷ no line (median) | per round |",
        "|---|---|---|---|---|",
        f"| p50 latency of the {LINE_USERS - BURSTS} single-request users | "
        f"{singles('line'):.2f} s | {singles('no_line'):.2f} s "
        f"| {singles('line') / singles('no_line'):.2f}x "
        f"| {ratios(lambda r: statistics.median(r.singles))} |",
        f"| tokens/s (all {LINE_USERS - BURSTS + BURSTS * BURST_SIZE} requests) | "
        f"{tps('line'):.0f} | {tps('no_line'):.0f} | {tps('line') / tps('no_line'):.2f}x "
        f"| {ratios(lambda r: r.tokens_per_s)} |",
        f"| last burst request answered | {bursts_done('line'):.2f} s "
        f"| {bursts_done('no_line'):.2f} s | {bursts_done('line') / bursts_done('no_line'):.2f}x "
        f"| {ratios(lambda r: max(r.bursts))} |",
        "",
        "Targets: single users' p50 lower with the line; tokens/s within 5 % of no line.",
        "",
        "Reading the figures: with no line every request decodes at once and all finish "
        f"together, so a single request waits for the bursts' {BURSTS * BURST_SIZE}; with the "
        f"line, {limit} run at once (each burst owner at most {ceil(limit * OWNER_SHARE)} of them), the single "
        "requests mostly in the first wave, and the rest of the bursts wait behind them. The "
        "default running limit comes from the KV cache (8192 tokens, one slot per 256: a short "
        "conversation plus its answer; longer prompts reserve more of it, so fewer are "
        "admitted). Real users are capped at 3 requests in flight, below the share one person "
        "may hold.",
        "",
    ]
    return "\n".join(lines)


def median(runs: list[Run], value: Callable[[Run], float]) -> float:
    return statistics.median(value(run) for run in runs)


def report(
    runs: dict[str, list[Run]], rounds: int, users: int, gap_s: float, load: tuple[float, float]
) -> str:
    def tps(name: str) -> float:
        return median(runs[name], lambda r: r.tokens_per_s)

    def spread(name: str) -> str:
        values = [run.tokens_per_s for run in runs[name]]
        return f"{min(values):.0f}–{max(values):.0f}"

    def p50(name: str) -> float:
        return median(runs[name], lambda r: r.p50)

    best = tps("static_same")
    naive_tps, naive_p50 = tps("naive"), p50("naive")
    rows = [
        ("pool, continuous batching, every user's own temperature", "continuous"),
        ("naive: one pipeline(prompt) per request, one worker thread", "naive"),
        ("pool, micro-batching, batches split by params", "static_split"),
        ("pool, micro-batching, all users on one temperature (its best case)", "static_same"),
    ]
    ttft = median(runs["stream_on"], lambda r: statistics.median(r.first_token))
    lines = [
        SECTION,
        "",
        f"Machine: {os.cpu_count()} shared CPU cores, {platform.machine()}, torch "
        f"{torch.__version__}, no GPU. Model: distilgpt2-size GPT-2 built from config "
        "(6 layers, 768 hidden, 12 heads, 50257-token vocabulary, random weights).",
        f"Workload: {users} users arriving {gap_s * 1000:.0f} ms apart, each with their own "
        f"temperature, {NEW_TOKENS} new tokens, sampling on (top_k 50, top_p 0.95), no early stop.",
        f"Figures: medians of {rounds} interleaved rounds. tokens/s = all generated tokens / "
        "time from the first arrival to the last answer; latency from each request's arrival. "
        f"The cores are shared with other work: 1-minute load average {load[0]:.1f} before the "
        f"run, {load[1]:.1f} after.",
        "Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_generation --write`.",
        "",
        NOISE_NOTE,
        "",
        "| engine | tokens/s | range over rounds | p50 latency | tokens/s vs naive "
        "| tokens/s vs micro-batching best case | p50 vs naive |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, name in rows:
        lines.append(
            f"| {label} | {tps(name):.0f} | {spread(name)} | {p50(name):.2f} s "
            f"| {tps(name) / naive_tps:.2f}x | {tps(name) / best:.2f}x | {p50(name) / naive_p50:.2f}x |"
        )
    lines += [
        "",
        "Targets for continuous batching: tokens/s ≥ 2x naive "
        f"({tps('continuous') / naive_tps:.2f}x), ≥ 0.85x the micro-batching best case "
        f"({tps('continuous') / best:.2f}x), p50 latency ≤ 0.6x naive "
        f"({p50('continuous') / naive_p50:.2f}x).",
    ]
    lines += [
        "",
        f"Streaming cost, {STREAM_USERS} users arriving at once on the continuous engine:",
        "",
        "| | tokens/s | range over rounds | p50 latency | p50 time to first token |",
        "|---|---|---|---|---|",
        f"| not streaming | {tps('stream_off'):.0f} | {spread('stream_off')} "
        f"| {p50('stream_off'):.2f} s | — |",
        f"| streaming (on_text at every token) | {tps('stream_on'):.0f} | {spread('stream_on')} "
        f"| {p50('stream_on'):.2f} s | {ttft:.2f} s |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--gap-ms", type=float, default=100.0)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "hfbot-bench-models"
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--line", action="store_true", help="the place-in-line bench instead")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.line:
        line_runs = asyncio.run(bench_line(args.rounds, args.models_dir))
        text = report_line(line_runs, args.rounds, (load_before, os.getloadavg()[0]))
        print()
        print(text)
        if args.write:
            write_section(LINE_SECTION, text)
        return
    runs = asyncio.run(bench(args.rounds, args.users, args.gap_ms / 1000, args.models_dir))
    load = (load_before, os.getloadavg()[0])
    section = report(runs, args.rounds, args.users, args.gap_ms / 1000, load)
    print()
    print(section)
    if args.write:
        write_section(SECTION, section)


if __name__ == "__main__":
    main()
