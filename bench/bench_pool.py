"""Pipeline pool: micro-batching against a naive bot and against raw batched pipelines.

Real-size architectures with random weights (the cost of a forward pass does not
depend on whether the weights are trained), built by `bot.offline.demo_models` at
its BASE scale: a 6-layer BERT classifier (768 hidden, 12 heads, 30522-token
vocabulary) and a distilgpt2-size GPT-2 (6 layers, 768 hidden, 12 heads,
50257-token vocabulary, no end-of-sequence token, so every request makes exactly
its 32 new tokens).

Measured side by side, interleaved over a few rounds (the order rotating each
round), medians reported:
- sentiment, 64 concurrent requests of 4 to 24 words: the pool; naive (one
  `pipeline(text)` per request in `run_in_executor`, one worker thread, the best
  a naive bot does on 2 cores); raw (`pipeline(all_texts, batch_size=32)`, no bot around it, with
  the pool's own `max_batch_size=32`: the best batch size for raw on this machine);
- generation, 8 concurrent prompts of 32 new tokens (the registry's sampling
  defaults, the same for every user): the pool against naive, and raw;
- a lone sentiment request (a few per round): the pool against one raw
  `pipeline(text)` call;
- memory, in a fresh process: six different classifiers requested one after the
  other with `max_loaded_models=2`, peak RSS against the RSS of two loaded.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_pool` (about 6 minutes
on 2 cores); `--write` also replaces the "Pipeline pool" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import torch
from transformers import pipeline

from bench.results import write_section
from bot.config import Settings
from bot.engine.pool import PipelinePool
from bot.offline.demo_models import BASE, WORDS, tiny_classifier, tiny_gpt2

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTIMENT_USERS = 64
GENERATION_USERS = 8
NEW_TOKENS = 32
BATCH = 32
MAX_WAIT_MS = 5.0
LONE_PER_ROUND = 3
MEMORY_MODELS = 6
GENERATION = {
    "max_new_tokens": NEW_TOKENS,
    "do_sample": True,
    "temperature": 0.8,
    "top_k": 50,
    "top_p": 0.95,
}
SECTION = "## Pipeline pool"


def sentences(count: int, seed: int, shortest: int = 4, longest: int = 24) -> list[str]:
    """Chat-length texts: 4 to 24 words, as people type after /sentiment."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(shortest, longest))) for _ in range(count)]


def pool_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pool_max_batch_size": BATCH,
        "pool_max_wait_ms": MAX_WAIT_MS,
        "pool_queue_size": 128,
        "pool_device": "cpu",
        "pool_dtype": "float32",
        "pool_request_timeout_s": 600,
    }
    return Settings(**(values | overrides))


async def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def naive(pipe: Any, executor: ThreadPoolExecutor, inputs: list[str], **params: Any) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.gather(
        *(loop.run_in_executor(executor, lambda x=x: pipe(x, **params)) for x in inputs)
    )


async def single(pipe: Any, text: str) -> None:
    pipe(text)


async def raw(pipe: Any, inputs: list[str], batch_size: int, **params: Any) -> None:
    pipe(inputs, batch_size=batch_size, **params)


async def through_pool(
    pool: PipelinePool, task: str, model: str, inputs: list[str], **params: Any
) -> None:
    await asyncio.gather(*(pool.submit(task, model, x, params) for x in inputs))


async def throughput(bert: Path, gpt2: Path, rounds: int) -> dict[str, list[float]]:
    """Seconds per run of each variant, interleaved round by round."""
    texts = sentences(SENTIMENT_USERS, seed=1)
    prompts = sentences(GENERATION_USERS, seed=2, shortest=6, longest=12)
    classifier = pipeline("text-classification", model=str(bert), device="cpu")
    generator = pipeline("text-generation", model=str(gpt2), device="cpu")
    executor = ThreadPoolExecutor(max_workers=1)
    times: dict[str, list[float]] = {}
    async with PipelinePool(pool_settings()) as pool:
        variants: dict[str, Callable[[], Any]] = {
            "sentiment naive": lambda: naive(classifier, executor, texts),
            "sentiment raw": lambda: raw(classifier, texts, BATCH),
            "sentiment pool": lambda: through_pool(pool, "text-classification", str(bert), texts),
            "generation naive": lambda: naive(generator, executor, prompts, **GENERATION),
            "generation raw": lambda: raw(generator, prompts, GENERATION_USERS, **GENERATION),
            "generation pool": lambda: through_pool(
                pool, "text-generation", str(gpt2), prompts, **GENERATION
            ),
        }
        for work in variants.values():
            await work()
        one = sentences(1, seed=3, shortest=16, longest=16)[0]
        variants["lone raw"] = lambda: single(classifier, one)
        variants["lone pool"] = lambda: through_pool(pool, "text-classification", str(bert), [one])
        names = list(variants)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                repeats = LONE_PER_ROUND if name.startswith("lone") else 1
                for _ in range(repeats):
                    times.setdefault(name, []).append(await timed(variants[name]))
            print(
                f"round {round_ + 1}/{rounds}: "
                + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()),
                flush=True,
            )
        times["batch sizes"] = [
            float(s) for s, n in pool.metrics.snapshot().batch_sizes.items() for _ in range(n)
        ]
    executor.shutdown()
    return times


def memory_child(bert: Path, workdir: Path) -> dict[str, float]:
    """In a fresh process: RSS with one model, with two, and at peak over six requested."""
    ids = []
    for index in range(MEMORY_MODELS):
        link = workdir / f"classifier-{index}"
        if not link.exists():
            link.symlink_to(bert, target_is_directory=True)
        ids.append(str(link))
    process = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    async def run() -> dict[str, float]:
        text = sentences(1, seed=4)[0]
        async with PipelinePool(pool_settings(pool_max_loaded_models=2)) as pool:
            base = process.memory_info().rss
            await pool.submit("text-classification", ids[0], text)
            one = process.memory_info().rss
            await pool.submit("text-classification", ids[1], text)
            two = process.memory_info().rss
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            for model_id in ids[2:]:
                await pool.submit("text-classification", model_id, text)
            stop.set()
            sampler.join()
            final = process.memory_info().rss
            loads = pool.metrics.snapshot().loads
        mib = 2**20
        return {
            "base": base / mib,
            "one": one / mib,
            "two": two / mib,
            "peak": max(peak[0], final) / mib,
            "final": final / mib,
            "loads": loads,
        }

    return asyncio.run(run())


def memory(bert: Path, workdir: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "bench.bench_pool", "--memory-child", str(bert), str(workdir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _ratio(times: dict[str, list[float]], baseline: str, ours: str) -> tuple[float, float]:
    """Median over rounds of baseline time / pool time, and the same for each one's best run.

    Each round measures both within seconds of each other, so a per-round ratio
    cancels most of the load other jobs put on the shared cores; the best-run
    ratio is what the two cost with the least interference seen.
    """
    per_round = [b / o for b, o in zip(times[baseline], times[ours], strict=True)]
    return statistics.median(per_round), min(times[baseline]) / min(times[ours])


def report(times: dict[str, list[float]], mem: dict[str, float], rounds: int) -> str:
    med = {name: statistics.median(values) for name, values in times.items()}
    sent = {k: SENTIMENT_USERS / med[f"sentiment {k}"] for k in ("naive", "raw", "pool")}
    gen = {
        k: GENERATION_USERS * NEW_TOKENS / med[f"generation {k}"] for k in ("naive", "raw", "pool")
    }
    ratios = {
        f"{kind} {baseline}": _ratio(times, f"{kind} {baseline}", f"{kind} pool")
        for kind in ("sentiment", "generation")
        for baseline in ("naive", "raw")
    }
    lone_raw, lone_pool = med["lone raw"] * 1000, med["lone pool"] * 1000
    lone_extra = 1000 * statistics.median(
        o - b for b, o in zip(times["lone raw"], times["lone pool"], strict=True)
    )
    lone_limit = lone_raw * 0.1 + MAX_WAIT_MS
    one_model = mem["one"] - mem["base"]
    budget = mem["base"] + 2 * one_model
    sizes = times["batch sizes"]

    def ratio(name: str) -> tuple[str, str]:
        median, best = ratios[name]
        return f"{median:.2f}x", f"{best:.2f}x"

    def ceiling(kind: str) -> tuple[str, str]:
        median, best = _ratio(times, f"{kind} naive", f"{kind} raw")
        return f"{median:.2f}x", f"{best:.2f}x"

    rows = [
        (
            "sentiment, 64 concurrent: req/s",
            f"{sent['pool']:.1f}",
            f"naive {sent['naive']:.1f}",
            *ratio("sentiment naive"),
            "≥ 2.5x",
        ),
        ("", "", f"raw batch={BATCH} {sent['raw']:.1f}", *ratio("sentiment raw"), "≥ 0.85x"),
        ("", "", "(raw ÷ naive: what batching itself gives)", *ceiling("sentiment"), "—"),
        (
            "generation, 8 × 32 tokens: tokens/s",
            f"{gen['pool']:.1f}",
            f"naive {gen['naive']:.1f}",
            *ratio("generation naive"),
            "≥ 3x",
        ),
        ("", "", f"raw batch=8 {gen['raw']:.1f}", *ratio("generation raw"), "—"),
        ("", "", "(raw ÷ naive: what batching itself gives)", *ceiling("generation"), "—"),
        (
            "lone sentiment request: latency ms",
            f"{lone_pool:.1f}",
            f"raw call {lone_raw:.1f}",
            f"+{lone_extra:.1f} ms",
            "",
            f"≤ +{lone_limit:.1f} ms ({MAX_WAIT_MS:g} ms + 10%)",
        ),
        (
            "memory, 6 models, max_loaded_models=2: peak RSS MiB",
            f"{mem['peak']:.0f}",
            f"budget of two {budget:.0f}",
            f"{mem['peak'] / budget:.2f}x",
            "",
            "≤ 1.0x",
        ),
    ]
    table = "\n".join(f"| {' | '.join(row)} |" for row in rows)
    return f"""{SECTION}

Machine: {platform.machine()}, {psutil.cpu_count()} CPU cores ({_cpu_name()}), torch
{torch.__version__} with {torch.get_num_threads()} intra-op threads (load average
{os.getloadavg()[0]:.1f} at the end of the run). Pool settings: max_batch_size={BATCH},
max_wait_ms={MAX_WAIT_MS:g}, one executor thread; generation goes through the pool's default
engine, continuous batching. Medians of {rounds} interleaved rounds ({LONE_PER_ROUND} lone
requests of each kind per round).

| figure | pool (median) | baseline (median) | ratio, median of rounds | ratio, best runs | target |
|---|---|---|---|---|---|
{table}

Targets (median of rounds): {_verdicts(ratios, lone_extra, lone_limit, mem["peak"] / budget)}.

- Observed pool batch sizes over the run (requests per model call): {_histogram(sizes)}.
- Memory: RSS {mem["base"]:.0f} MiB with the pool empty, {mem["one"]:.0f} with one model,
  {mem["two"]:.0f} with two; six different models requested one after the other made
  {mem["loads"]:.0f} loads and RSS peaked at {mem["peak"]:.0f} MiB, ending at
  {mem["final"]:.0f} MiB. "Budget of two" = empty RSS + 2 × (RSS of one − empty).
- Raw seconds per run, all rounds: {_raw_times(times)}.

Reading the figures: the pool cannot beat batching itself, so pool ÷ naive is
about (raw ÷ naive) × (pool ÷ raw). Where the raw ÷ naive row is below a target,
no batcher reaches that target on this machine at that moment; the pool's part is
keeping pool ÷ raw near 1. Sentiment texts are chat-length (4–24 words), where a
batch gains least on 2 CPU cores. In the generation row all 8 prompts share one set
of parameters, a static batch's best case; the pool serves them on the continuous
engine, whose per-request sampling (every user may have their own settings) costs
about a fifth against one static `generate()` batch. With per-user settings the
picture reverses: see "Generation engine" above. Another process on these 2 cores
slows whichever variant is running, hence per-round ratios. The pool's model calls
hop to its executor thread and back, which is most of a lone request's extra latency.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_pool --write`
"""


def _verdicts(
    ratios: dict[str, tuple[float, float]], lone_extra: float, lone_limit: float, memory: float
) -> str:
    """Each target as met, or missed by how much, so a reader need not do the arithmetic."""
    checks = [
        ("sentiment vs naive", ratios["sentiment naive"][0], 2.5),
        ("sentiment vs raw", ratios["sentiment raw"][0], 0.85),
        ("generation vs naive", ratios["generation naive"][0], 3.0),
        ("lone request", lone_limit / max(lone_extra, 1e-9), 1.0),
        ("memory", 1 / memory, 1.0),
    ]
    return "; ".join(
        f"{name} met" if value >= target else f"{name} missed by {100 * (1 - value / target):.0f}%"
        for name, value, target in checks
    )


def _histogram(sizes: list[float]) -> str:
    counts: dict[int, int] = {}
    for size in sizes:
        counts[int(size)] = counts.get(int(size), 0) + 1
    return ", ".join(f"{n}×{size}" for size, n in sorted(counts.items()))


def _raw_times(times: dict[str, list[float]]) -> str:
    keep = [name for name in times if name.startswith(("sentiment", "generation"))]
    return "; ".join(f"{name} " + " ".join(f"{t:.2f}" for t in times[name]) for name in keep)


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "hfbot-bench-models"
    )
    parser.add_argument(
        "--write", action="store_true", help="replace the section in bench/RESULTS.md"
    )
    parser.add_argument("--memory-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(*args.memory_child)))
        return
    bert = tiny_classifier(args.models_dir, BASE)
    gpt2 = tiny_gpt2(args.models_dir, BASE, end_of_sequence=False)
    with tempfile.TemporaryDirectory() as workdir:
        mem = memory(bert, Path(workdir))
    print(f"memory: {mem}", flush=True)
    times = asyncio.run(throughput(bert, gpt2, args.rounds))
    text = report(times, mem, args.rounds)
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
