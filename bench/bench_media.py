"""Photos and voice notes: the pool's micro-batching against a naive bot, decode cost per file.

Real-size architectures with random weights (a forward pass costs the same
trained or not), built by `bot.offline.demo_models` at its BASE scale: a ViT-base
image classifier (12 layers, 768 hidden, 224×224, patch 16, 1000 labels) and a
wav2vec2-base-size CTC speech model (12 layers, 768 hidden, the 7-layer
convolutional feature encoder, 16 kHz).

Sixteen users send at once, as the bot receives them: JPEG photos of
1280×960 (either way up), or OGG/Opus voice notes of 2 to 8 seconds recorded at
48 kHz. Each request carries the file's bytes; decoding (Pillow, PyAV with
resampling to 16 kHz) is part of every variant, as in the bot:
- pool: `PipelinePool.submit(task, model, ImageBytes | AudioBytes)` for all 16
  concurrently; the runner decodes and calls the pipeline once per batch;
- naive: one `pipeline(decoded_file)` per request in `run_in_executor` (one worker
  thread: more threads only fight over 2 cores), decoding in the same call.
Variants are interleaved over a few rounds, order rotating; medians reported.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_media` (about 3 minutes
on 2 cores); `--write` also replaces the "Photos and voice notes" section of
bench/RESULTS.md, leaving the other sections as they are.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from PIL import Image
from transformers import pipeline

from bench.results import write_section
from bot.config import Settings
from bot.engine.inputs import AudioBytes, ImageBytes, decode_audio, decode_image, decode_input
from bot.engine.pool import PipelinePool
from bot.offline.demo_models import BASE, tiny_image_classifier, tiny_speech_recognizer
from bot.offline.media_samples import sound_bytes

os.environ.setdefault("HF_HUB_OFFLINE", "1")

USERS = 16
MAX_WAIT_MS = 5.0
MAX_PIXELS = 25_000_000
MAX_SECONDS = 60.0
RATE = 16_000
SECTION = "## Photos and voice notes"


def photo(seed: int) -> bytes:
    """A phone-sized JPEG with smooth shapes and some grain, so it compresses like a photo."""
    rng = np.random.default_rng(seed)
    width, height = (1280, 960) if seed % 2 == 0 else (960, 1280)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * (c + 1) / width + y / height) * 100 % 255 for c in range(3)], axis=-1
    ) + rng.normal(0, 8, (height, width, 3))
    out = io.BytesIO()
    Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(out, format="JPEG", quality=85)
    return out.getvalue()


def voice_notes(seed: int) -> tuple[list[bytes], float]:
    """USERS voice notes of 2 to 8 seconds (OGG/Opus, 48 kHz) and their total seconds."""
    rng = random.Random(seed)
    lengths = [rng.uniform(2, 8) for _ in range(USERS)]
    return [sound_bytes(seconds) for seconds in lengths], sum(lengths)


def pool_settings() -> Settings:
    return Settings(
        _env_file=None,
        pool_max_batch_size=USERS,
        pool_max_wait_ms=MAX_WAIT_MS,
        pool_queue_size=128,
        pool_device="cpu",
        pool_dtype="float32",
        pool_request_timeout_s=600,
    )


async def through_pool(pool: PipelinePool, task: str, model: Path, inputs: list[Any]) -> None:
    await asyncio.gather(*(pool.submit(task, str(model), item, {}) for item in inputs))


async def naive(pipe: Any, executor: ThreadPoolExecutor, inputs: list[Any]) -> None:
    loop = asyncio.get_running_loop()
    rate = getattr(getattr(pipe, "feature_extractor", None), "sampling_rate", None)
    await asyncio.gather(
        *(loop.run_in_executor(executor, lambda x=x: pipe(decode_input(x, rate))) for x in inputs)
    )


async def raw(pipe: Any, executor: ThreadPoolExecutor, inputs: list[Any]) -> None:
    """No bot: decode everything, then one pipeline call over all of it (clips sorted by length)."""
    rate = getattr(getattr(pipe, "feature_extractor", None), "sampling_rate", None)

    def run() -> None:
        decoded = [decode_input(x, rate) for x in inputs]
        if rate is not None:
            decoded.sort(key=lambda clip: len(clip["raw"]))
        pipe(decoded, batch_size=len(decoded))

    await asyncio.get_running_loop().run_in_executor(executor, run)


async def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


def decode_costs(photos: list[bytes], notes: list[bytes], repeats: int = 5) -> dict[str, float]:
    """Median milliseconds to decode one file, and per second of sound."""
    image_ms = [_ms(lambda data=data: decode_image(data, MAX_PIXELS)) for data in photos * repeats]
    note = notes[0]
    seconds = len(decode_audio(note, RATE, MAX_SECONDS)) / RATE
    audio_ms = [_ms(lambda: decode_audio(note, RATE, MAX_SECONDS)) for _ in range(repeats * 4)]
    return {
        "image_ms": statistics.median(image_ms),
        "image_kb": statistics.median(len(p) for p in photos) / 1000,
        "audio_ms": statistics.median(audio_ms),
        "audio_s": seconds,
    }


def _ms(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


async def measure(models: Path, rounds: int) -> dict[str, Any]:
    vit = tiny_image_classifier(models, BASE)
    wav2vec2 = tiny_speech_recognizer(models, BASE)
    photos = [photo(seed) for seed in range(USERS)]
    notes, audio_seconds = voice_notes(seed=1)
    images = [ImageBytes(data, MAX_PIXELS) for data in photos]
    sounds = [AudioBytes(data, MAX_SECONDS) for data in notes]
    classifier = pipeline("image-classification", model=str(vit), device="cpu")
    recognizer = pipeline("automatic-speech-recognition", model=str(wav2vec2), device="cpu")
    executor = ThreadPoolExecutor(max_workers=1)
    times: dict[str, list[float]] = {}
    async with PipelinePool(pool_settings()) as pool:
        variants: dict[str, Callable[[], Any]] = {
            "images naive": lambda: naive(classifier, executor, images),
            "images raw": lambda: raw(classifier, executor, images),
            "images pool": lambda: through_pool(pool, "image-classification", vit, images),
            "audio naive": lambda: naive(recognizer, executor, sounds),
            "audio raw": lambda: raw(recognizer, executor, sounds),
            "audio pool": lambda: through_pool(
                pool, "automatic-speech-recognition", wav2vec2, sounds
            ),
        }
        for work in variants.values():  # warm-up: loads, first-call allocations
            await work()
        warmup_batches = Counter(pool.metrics.snapshot().batch_sizes)
        names = list(variants)
        for round_index in range(rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                times.setdefault(name, []).append(await timed(variants[name]))
        batches = Counter(pool.metrics.snapshot().batch_sizes) - warmup_batches
    executor.shutdown()
    return {
        "times": times,
        "audio_seconds": audio_seconds,
        "batches": dict(sorted(batches.items())),
        "decode": decode_costs(photos, notes),
        "rounds": rounds,
    }


def report(result: dict[str, Any]) -> str:
    times, audio_seconds = result["times"], result["audio_seconds"]
    median = {name: statistics.median(values) for name, values in times.items()}

    def ratio(kind: str, slow: str, fast: str) -> float:
        pairs = zip(times[f"{kind} {slow}"], times[f"{kind} {fast}"], strict=True)
        return statistics.median(s / f for s, f in pairs)

    per_round = {kind: ratio(kind, "naive", "pool") for kind in ("images", "audio")}
    batching = {kind: ratio(kind, "naive", "raw") for kind in ("images", "audio")}
    images_pool, images_naive = USERS / median["images pool"], USERS / median["images naive"]
    audio_pool = audio_seconds / median["audio pool"]
    audio_naive = audio_seconds / median["audio naive"]
    decode = result["decode"]
    batches = ", ".join(f"{n}×{size}" for size, n in result["batches"].items())
    raw = "; ".join(
        f"{name} {' '.join(f'{t:.2f}' for t in values)}" for name, values in times.items()
    )
    return f"""{SECTION}

Machine: {platform.machine()}, {psutil.cpu_count()} CPU cores, torch {torch.__version__} with
{torch.get_num_threads()} intra-op threads, shared with other engineers' jobs (load average
{os.getloadavg()[0]:.1f} at the end of the run). Pool: max_batch_size={USERS},
max_wait_ms={MAX_WAIT_MS:g}, one executor thread; naive: one pipeline call per request in
`run_in_executor` (one thread). {USERS} users at once; medians of {result["rounds"]} interleaved
rounds. Decoding is inside every variant, as in the bot.

| figure | pool (median) | naive (median) | pool ÷ naive, median of rounds | raw ÷ naive: what batching itself gives |
|---|---|---|---|---|
| ViT-base /whatis, {USERS} JPEG photos 1280×960: images/s | {images_pool:.1f} | {images_naive:.1f} | {per_round["images"]:.2f}x | {batching["images"]:.2f}x |
| wav2vec2-base /transcribe, {USERS} voice notes of 2–8 s ({audio_seconds:.0f} s): audio-seconds/s | {audio_pool:.1f} | {audio_naive:.1f} | {per_round["audio"]:.2f}x | {batching["audio"]:.2f}x |

"Raw" is no bot at all: decode the {USERS} files, then one pipeline call with batch_size={USERS}
(recordings sorted by length first).

Decode cost per file (median, one thread): a {decode["image_kb"]:.0f} KB 1280×960 JPEG to RGB
{decode["image_ms"]:.1f} ms; a {decode["audio_s"]:.1f} s OGG/Opus voice note to 16 kHz mono
{decode["audio_ms"]:.1f} ms ({decode["audio_ms"] / decode["audio_s"]:.2f} ms per second of sound).

- Reading the figures: on 2 CPU cores a ViT-base or wav2vec2-base forward pass is already
  large matrix products (197 patches, or 50 frames a second, × 768), so a batch adds little
  that one item does not already use: for photos the raw column is about the ceiling. For
  recordings one plain batch loses to one-by-one, because padding a 2-second note to 8
  seconds costs what 8 seconds of speech would; the pool's speech runner therefore splits
  each batch into groups of similar length (within 1.25x), which holds it level with naive
  (0.65x naive in a trial run before that change). A GPU, where a batch fills otherwise idle
  units, should gain more from batching; not measured here.
- Pool batch sizes over the measured rounds (requests per model call): {batches}.
- Raw seconds per run, all rounds: {raw}.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_media --write` (models are
built into a temp folder on first run).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "hfbot-bench-models"
    )
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    args = parser.parse_args()
    text = report(asyncio.run(measure(args.models_dir, args.rounds)))
    print(text)
    if args.write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
