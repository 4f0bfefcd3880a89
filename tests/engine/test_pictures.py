"""/imagine's engine: a picture a person can draw again, its steps as it draws, stopped
between steps, and refused before queueing when it would hold the executor too long."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from bot.config import Settings
from bot.engine.fair_turns import Caller
from bot.engine.image_generation import PictureRunner
from bot.engine.pool import PipelinePool
from bot.engine.runners import Runner, load_runner
from bot.errors import TooMuchWork
from bot.tasks import TASKS, Picture, drawing_work

IMAGINE = TASKS["imagine"]
TASK = IMAGINE.pipeline_task
WAIT = 60.0


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, pool_max_wait_ms=20, pool_request_timeout_s=WAIT, **values)


class CountingLoader:
    """Loads the real runner and counts the denoiser's passes, holding one at a gate."""

    def __init__(self) -> None:
        self.passes = 0
        self.gate: threading.Event | None = None
        self.at_gate = threading.Event()

    def __call__(self, task: str, model_id: str) -> Runner:
        runner = load_runner(task, model_id, device="cpu", dtype="float32")
        assert isinstance(runner, PictureRunner)

        def counted(*_: Any) -> None:
            self.passes += 1
            if self.gate is not None and self.passes == 2:
                self.at_gate.set()
                self.gate.wait(WAIT)

        runner.pipeline.unet.register_forward_hook(counted)
        return runner


def params(**changes: Any) -> dict[str, Any]:
    return IMAGINE.call_kwargs({**IMAGINE.default_params(), "size": "256x256", **changes}, {})


async def test_the_same_seed_draws_the_same_picture_and_a_random_one_is_told(
    tiny_picture_maker: Path,
) -> None:
    model = str(tiny_picture_maker)
    async with PipelinePool(settings()) as pool:
        first = await pool.submit(TASK, model, "a red kite", params(seed=42, size="384x384"))
        again = await pool.submit(TASK, model, "a red kite", params(seed=42, size="384x384"))
        drawn = await pool.submit(TASK, model, "a red kite", params(seed=-1))

    assert isinstance(first, Picture) and first.seed == 42
    assert first.png == again.png, "a seed names one picture"
    assert Image.open(io.BytesIO(first.png)).size == (384, 384)
    assert 0 <= drawn.seed < 2**32 and drawn.png != first.png
    assert IMAGINE.result.format(first, "a red <kite>").startswith("a red &lt;kite&gt;\n")
    assert "seed 42" in IMAGINE.result.format(first, "a red kite")


async def test_each_step_is_reported_as_it_is_drawn(tiny_picture_maker: Path) -> None:
    steps: list[tuple[int, int]] = []
    async with PipelinePool(settings()) as pool:
        caller = Caller(owner=1, on_progress=lambda done, total: steps.append((done, total)))
        await pool.submit(TASK, str(tiny_picture_maker), "x", params(steps=4), caller=caller)
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


async def test_a_stopped_picture_stops_between_steps_and_frees_the_executor(
    tiny_picture_maker: Path,
) -> None:
    """Stop (or /cancel) cancels the waiting task: the picture goes no further than the step
    under way, and the next person's picture is drawn at once."""
    loader = CountingLoader()
    loader.gate = threading.Event()
    model = str(tiny_picture_maker)
    async with PipelinePool(settings(), loader=loader) as pool:
        drawing = asyncio.create_task(pool.submit(TASK, model, "slow", params(steps=20)))
        await asyncio.to_thread(loader.at_gate.wait, WAIT)
        drawing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await drawing
        loader.gate.set()
        passes_when_stopped = loader.passes
        loader.gate = None
        picture = await pool.submit(TASK, model, "next", params(steps=1))

    assert passes_when_stopped == 2, "no step after the one under way when it was stopped"
    assert isinstance(picture, Picture)
    assert loader.passes == 3


async def test_pictures_are_drawn_one_per_model_call(tiny_picture_maker: Path) -> None:
    async with PipelinePool(settings()) as pool:
        pictures = await asyncio.gather(
            *(pool.submit(TASK, str(tiny_picture_maker), f"p{i}", params()) for i in range(3))
        )
        batches = dict(pool.metrics.batch_sizes)
    assert all(isinstance(picture, Picture) for picture in pictures)
    assert batches == {1: 3}, "each picture reports its own steps and stops on its own"


def test_drawing_work_is_pixels_times_steps_doubled_by_guidance() -> None:
    assert drawing_work({"size": "512x512", "steps": 1, "guidance": 0.0}) == pytest.approx(0.262144)
    assert drawing_work({"size": "1024x1024", "steps": 4, "guidance": 1.0}) == pytest.approx(
        4.194304
    )
    assert drawing_work({"size": "512x512", "steps": 4, "guidance": 7.5}) == pytest.approx(2.097152)


def test_a_picture_over_the_budget_is_refused_with_the_numbers_that_make_it_so() -> None:
    check = IMAGINE.work_check
    assert check is not None
    budget = settings(max_image_work=4.0)
    check(params(size="1024x1024", steps=3), "a castle", budget)
    with pytest.raises(TooMuchWork) as refused:
        check(params(size="1024x1024", steps=8), "a castle", budget)
    assert refused.value.key == "error.too_much_work_pixels"
    assert refused.value.values == {"size": "1024×1024", "steps": 8, "work": "8.4", "limit": "4"}
    with pytest.raises(TooMuchWork):
        check(params(size="768x768", steps=4, guidance=7.0), "a castle", budget)
