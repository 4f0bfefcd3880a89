"""Pictures and voices out, photos in conversation: seconds per picture, speech's real-time
factor, a photo turn's time to first token; the bot's path beside the bare model.

Real-size architectures with random weights (a forward pass costs the same trained or not),
built by `bot.offline.demo_models` at its BASE scale:
- /imagine's default, IDKiro/sdxs-512-dreamshaper: a 316M-parameter UNet without a mid
  block (320/640/1280 channels, one layer per block), CLIP ViT-L/14's text encoder and
  TAESD, one step at 512×512 without guidance, as the model card draws; beside it the
  runner-up considered, stabilityai/sd-turbo's architecture (SD 2.1's 866M UNet,
  OpenCLIP-H text encoder, the full autoencoder), also one step at 512×512;
- /say's default, facebook/mms-tts-eng: VITS at MMS-TTS's sizes (VitsConfig's defaults,
  16 kHz); its output length is whatever the random duration predictor says, so the
  figure is compute per second of sound produced (the decoder's cost grows with it);
- the vision default, HuggingFaceTB/SmolVLM-256M-Instruct: SigLIP base at 512 px,
  SmolLM2-135M's 30 layers, 64 tokens per 512-px tile, photos up to 2048 px.

Variants, interleaved over a few rounds (order rotating), medians reported:
- pictures: the pool (`PipelinePool.submit`, PNG out) against the bare pipeline call;
  two prompts in one pipeline call against two calls (why the runner draws alone);
  the runner-up's bare call;
- speech: eight sentences from eight people through the pool (one batch, pieces of
  similar length together, OGG/Opus encoding included) against one VITS call per
  sentence with the same encoding;
- a photo turn: a 1280×960 JPEG and a question through the pool (micro-batched, streamed),
  time to the first streamed text and to the whole answer of 16 tokens, against
  the processor and `generate` with a streamer, no bot.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_media_out` (about 6 minutes
on 2 cores; 8 GB of memory at its peak); `--write` also replaces the "Pictures, voices and
photos in conversation" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import torch
from transformers.generation.streamers import BaseStreamer

from bench.bench_media import photo
from bench.results import write_section
from bot.config import Settings
from bot.engine.chat import ChatPrompt
from bot.engine.image_generation import PictureRunner
from bot.engine.inputs import ImageBytes, decode_image
from bot.engine.pool import PipelinePool
from bot.engine.runners import Runner, load_runner
from bot.engine.speech import SpeechRunner, encode_voice_note
from bot.engine.vision_chat import VisionChatRunner
from bot.offline.demo_models import BASE, picture_pipeline, tiny_vision_chat, tiny_voice

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SECTION = "## Pictures, voices and photos in conversation"
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
SENTENCES = [
    "The weather today is sunny and warm.",
    "Once upon a time there was a small robot.",
    "Paris is the capital of France, and Rome is the capital of Italy.",
    "Every morning the robot read a new story.",
    "The team won the match in the last minute.",
    "A new phone was released with a faster chip.",
    "Where does Alice live? She lives in London with her cat.",
    "Summaries are shorter than the text they summarise.",
]
VISION_PARAMS = {"max_new_tokens": 16, "min_new_tokens": 16, "do_sample": False}
MAX_PIXELS = 25_000_000


def pool_settings() -> Settings:
    return Settings(
        _env_file=None,
        pool_max_wait_ms=5,
        pool_device="cpu",
        pool_dtype="float32",
        pool_request_timeout_s=900,
    )


def runner_up_pipeline(tokenizer: Any) -> Any:
    """stabilityai/sd-turbo's architecture (SD 2.1 base) with random weights, in memory;
    its tokenizer is CLIP's, as SDXS's is."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=64,
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=49408,
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=23,
            num_attention_heads=16,
            max_position_embeddings=77,
            hidden_act="gelu",
        )
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=2,
        sample_size=512,
    )
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=EulerDiscreteScheduler(timestep_spacing="trailing", steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


class FirstToken(BaseStreamer):
    """Notes when `generate` hands out its first new token (its first `put` is the prompt)."""

    def __init__(self, seen: list[float], started: float) -> None:
        self.seen, self.started, self.puts = seen, started, 0

    def put(self, value: torch.Tensor) -> None:
        self.puts += 1
        if self.puts == 2:
            self.seen.append(time.perf_counter() - self.started)

    def end(self) -> None:
        """Nothing to flush."""


async def timed(work: Callable[[], Coroutine[Any, Any, Any]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def interleaved(
    variants: dict[str, Callable[[], Coroutine[Any, Any, Any]]], rounds: int
) -> dict[str, list[float]]:
    """Seconds of each variant per round, after one warm-up run of each."""
    for work in variants.values():
        await work()
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(rounds):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            times[name].append(await timed(variants[name]))
    return times


def parameters(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


async def measure_pictures(rounds: int, executor: ThreadPoolExecutor) -> dict[str, Any]:
    torch.manual_seed(0)
    pipe = picture_pipeline(BASE)
    pipe.set_progress_bar_config(disable=True)
    runner_up = runner_up_pipeline(pipe.tokenizer)
    loop = asyncio.get_running_loop()
    call = {"num_inference_steps": 1, "guidance_scale": 0.0, "height": 512, "width": 512}

    def bare(pipeline: Any, prompts: str | list[str]) -> Callable[[], Coroutine[Any, Any, Any]]:
        async def run() -> Any:
            return await loop.run_in_executor(executor, lambda: pipeline(prompts, **call))

        return run

    async def two_calls() -> None:
        await bare(pipe, PROMPT)()
        await bare(pipe, PROMPT)()

    def loader(task: str, model_id: str) -> Runner:
        return PictureRunner(pipe)

    sizes = {name: parameters(getattr(pipe, name)) for name in ("unet", "text_encoder", "vae")}
    sizes["runner-up unet"] = parameters(runner_up.unet)
    sizes["runner-up text_encoder"] = parameters(runner_up.text_encoder)
    sizes["runner-up vae"] = parameters(runner_up.vae)
    params = {"steps": 1, "guidance": 0.0, "size": "512x512", "seed": 7}
    async with PipelinePool(pool_settings(), loader=loader, executor=executor) as pool:
        variants = {
            "picture pool": lambda: pool.submit("text-to-image", "sdxs", PROMPT, params),
            "picture bare": bare(pipe, PROMPT),
            "two prompts, one call": bare(pipe, [PROMPT, PROMPT]),
            "two prompts, two calls": two_calls,
            "runner-up bare": bare(runner_up, PROMPT),
        }
        times = await interleaved(variants, rounds)
    return {"times": times, "sizes": sizes}


async def measure_speech(models: Path, rounds: int, executor: ThreadPoolExecutor) -> dict[str, Any]:
    voice = tiny_voice(models, BASE)
    runner = load_runner("text-to-speech", str(voice), device="cpu", dtype="float32")
    assert isinstance(runner, SpeechRunner)
    loop = asyncio.get_running_loop()
    produced: list[float] = []

    def one_by_one() -> None:
        seconds = 0.0
        for text in SENTENCES:
            ids = runner.tokenizer(text, return_tensors="pt")
            with torch.inference_mode():
                output = runner.model(**ids)
            samples = output.waveform[0, : int(output.sequence_lengths[0])].numpy()
            encode_voice_note(samples, runner.sampling_rate)
            seconds += samples.size / runner.sampling_rate
        produced.append(seconds)

    async def naive() -> None:
        await loop.run_in_executor(executor, one_by_one)

    async def through_pool() -> None:
        notes = await asyncio.gather(
            *(pool.submit("text-to-speech", str(voice), text) for text in SENTENCES)
        )
        produced.append(sum(note.seconds for note in notes))

    async with PipelinePool(pool_settings(), executor=executor) as pool:
        times = await interleaved({"speech pool": through_pool, "speech naive": naive}, rounds)
        batches = dict(pool.metrics.batch_sizes)
    return {
        "times": times,
        "audio_seconds": statistics.median(produced),
        "batches": batches,
        "parameters": parameters(runner.model),
    }


async def measure_vision(models: Path, rounds: int, executor: ThreadPoolExecutor) -> dict[str, Any]:
    model = tiny_vision_chat(models, BASE)
    edge = pool_settings().vision_image_edge
    runner = load_runner("chat", str(model), device="cpu", dtype="float32", vision_image_edge=edge)
    own = load_runner("chat", str(model), device="cpu", dtype="float32")
    assert isinstance(runner, VisionChatRunner) and isinstance(own, VisionChatRunner)
    picture = ImageBytes(photo(0), MAX_PIXELS)
    prompt = ChatPrompt(None, (), "What is in this photo?", (picture,))
    tokens = {"default": runner.fit(prompt, 16).tokens, "own": own.fit(prompt, 16).tokens}
    loop = asyncio.get_running_loop()
    first: dict[str, list[float]] = {"vision pool": [], "vision bare": [], "vision own edge": []}

    async def through_pool() -> None:
        started = time.perf_counter()
        seen: list[float] = []
        await pool.submit(
            "chat",
            str(model),
            prompt,
            VISION_PARAMS,
            on_text=lambda _: seen.append(time.perf_counter() - started) if not seen else None,
        )
        first["vision pool"].append(seen[0])

    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt.message}]}
    ]

    def generate(chosen: VisionChatRunner, seen: list[float], started: float) -> None:
        """No bot: the processor's template and tensors, then `generate` with a streamer."""
        decoded = decode_image(picture.data, MAX_PIXELS)
        text = chosen.processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = chosen.processor(text=[text], images=[[decoded]], return_tensors="pt")
        with torch.inference_mode():
            chosen.model.generate(**inputs, **VISION_PARAMS, streamer=FirstToken(seen, started))

    def bare(chosen: VisionChatRunner, name: str) -> Callable[[], Coroutine[Any, Any, Any]]:
        async def run() -> None:
            seen: list[float] = []
            await loop.run_in_executor(executor, generate, chosen, seen, time.perf_counter())
            first[name].append(seen[0])

        return run

    async with PipelinePool(pool_settings(), executor=executor) as pool:
        variants = {
            "vision pool": through_pool,
            "vision bare": bare(runner, "vision bare"),
            "vision own edge": bare(own, "vision own edge"),
        }
        times = await interleaved(variants, rounds)
    for values in first.values():
        del values[0]  # the warm-up run's
    return {
        "times": times,
        "first": first,
        "prompt_tokens": tokens,
        "edge": edge,
        "parameters": parameters(runner.model),
    }


async def measure(models: Path, rounds: int) -> dict[str, Any]:
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench")
    try:
        pictures = await measure_pictures(rounds, executor)
        gc.collect()  # the pipelines' 8 GB go before the next models load
        return {
            "pictures": pictures,
            "speech": await measure_speech(models, rounds, executor),
            "vision": await measure_vision(models, rounds, executor),
            "rounds": rounds,
        }
    finally:
        executor.shutdown()


def _ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    pairs = zip(times[slow], times[fast], strict=True)
    return statistics.median(s / f for s, f in pairs)


def report(result: dict[str, Any]) -> str:
    pictures, speech, vision = result["pictures"], result["speech"], result["vision"]
    pt, st, vt = pictures["times"], speech["times"], vision["times"]
    med = {name: statistics.median(v) for part in (pt, st, vt) for name, v in part.items()}
    sizes = pictures["sizes"]
    audio = speech["audio_seconds"]
    first = {name: statistics.median(values) for name, values in vision["first"].items()}
    first_ratio = statistics.median(
        p / b
        for p, b in zip(vision["first"]["vision pool"], vision["first"]["vision bare"], strict=True)
    )
    batches = ", ".join(f"{n}×{size}" for size, n in sorted(speech["batches"].items()))
    batching = _ratio(pt, "two prompts, one call", "two prompts, two calls")
    batching_verdict = (
        "batching pictures gains nothing on these cores, so the picture runner draws one at\n"
        "  a time, each with its own steps and its own Stop."
        if batching >= 0.9
        else f"a batch saves {1 - batching:.0%} here, which the picture runner gives up to draw\n"
        "  one at a time, each with its own steps and its own Stop."
    )
    raw = "; ".join(
        f"{name} {' '.join(f'{t:.2f}' for t in values)}"
        for part in (pt, st, vt)
        for name, values in part.items()
    )
    return f"""{SECTION}

Machine: {platform.machine()}, {psutil.cpu_count()} CPU cores, torch {torch.__version__} with
{torch.get_num_threads()} intra-op threads, shared with other engineers' jobs (load average
{os.getloadavg()[0]:.1f} at the end of the run). One executor thread; medians of
{result["rounds"]} interleaved rounds after a warm-up run of each variant. Random weights at
the real sizes: SDXS-512's UNet {sizes["unet"]:.0f}M, text encoder {sizes["text_encoder"]:.0f}M,
TAESD {sizes["vae"]:.1f}M parameters; SD-Turbo's {sizes["runner-up unet"]:.0f}M /
{sizes["runner-up text_encoder"]:.0f}M / {sizes["runner-up vae"]:.0f}M; MMS-TTS's VITS
{speech["parameters"]:.0f}M; SmolVLM-256M {vision["parameters"]:.0f}M.

| figure | the bot's path (median) | bare model (median) | bot ÷ bare, median of rounds |
|---|---|---|---|
| /imagine, SDXS-512 architecture, 512×512, 1 step: seconds per picture | {med["picture pool"]:.2f} | {med["picture bare"]:.2f} | {_ratio(pt, "picture pool", "picture bare"):.2f}x |
| /say, MMS-TTS VITS, {len(SENTENCES)} sentences from {len(SENTENCES)} people ({audio:.1f} s of sound): real-time factor | {med["speech pool"] / audio:.3f} | {med["speech naive"] / audio:.3f} (one call per sentence) | {_ratio(st, "speech pool", "speech naive"):.2f}x |
| photo turn, SmolVLM-256M, 1280×960 JPEG read at {vision["edge"]} px ({vision["prompt_tokens"]["default"]} prompt tokens): seconds to first text | {first["vision pool"]:.2f} | {first["vision bare"]:.2f} | {first_ratio:.2f}x |
| the same turn: seconds to a 16-token answer | {med["vision pool"]:.2f} | {med["vision bare"]:.2f} | {_ratio(vt, "vision pool", "vision bare"):.2f}x |

- Why SDXS-512 is the default: one step, no guidance, safetensors in every folder, no code of
  its own, OpenRAIL++. Its architecture draws a 512×512 picture in {med["picture bare"]:.1f} s here; the
  runner-up, SD-Turbo (also one step, but under Stability's non-commercial research licence),
  takes {med["runner-up bare"]:.1f} s ({_ratio(pt, "runner-up bare", "picture bare"):.1f}x) for the same picture.
- Two prompts in one pipeline call take {med["two prompts, one call"]:.2f} s against {med["two prompts, two calls"]:.2f} s for two
  calls ({batching:.2f}x, median of rounds): {batching_verdict}
- The same photo at SmolVLM's own 2048 px ({vision["prompt_tokens"]["own"]} prompt tokens, 13 tiles) takes
  {first["vision own edge"]:.1f} s to the first text with no bot
  ({statistics.median(o / b for o, b in zip(vision["first"]["vision own edge"], vision["first"]["vision bare"], strict=True)):.1f}x the {vision["edge"]}-px read): why `HFBOT_VISION_IMAGE_EDGE` is 1024 by default.
- The speech pool ran {batches} (batches × requests per model call over all rounds).
  Real-time factor: seconds of compute per second of sound (below 1 is faster than speech).
- Raw seconds per run, all rounds: {raw}.

Reproduce: `HF_HUB_OFFLINE=1 .venv/bin/python -m bench.bench_media_out --write` (models are
built into a temp folder on first run).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
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
