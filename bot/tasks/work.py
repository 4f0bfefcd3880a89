"""How much model work one request asks for, judged before it is queued.

A request that would hold the executor too long is refused with the numbers
that make it so, before anything is loaded or queued: the registry row of a
command names its check (`TaskSpec.work_check`), and the request path calls
it with the call's parameters, the request's text and the bot's settings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bot.config import Settings
from bot.errors import InputTooLong, TooMuchWork
from bot.tasks.params import PARAMS, picture_size


def drawing_work(params: Mapping[str, Any]) -> float:
    """Megapixel-steps a picture costs: width × height × steps, twice that with guidance.

    Guidance above 1 runs the denoiser twice a step (with and without the prompt),
    which is what classifier-free guidance is; at or below 1 diffusers skips it.
    """
    width, height = picture_size(str(params.get("size", PARAMS["size"].default)))
    steps = int(params.get("steps", PARAMS["steps"].default))
    passes = 2 if float(params.get("guidance", PARAMS["guidance"].default)) > 1.0 else 1
    return width * height * steps * passes / 1_000_000


def check_drawing_work(params: Mapping[str, Any], text: str, settings: Settings) -> None:
    """Refuse a picture whose size and steps cost more than `max_image_work` allows."""
    work = drawing_work(params)
    if work > settings.max_image_work:
        width, height = picture_size(str(params.get("size", PARAMS["size"].default)))
        raise TooMuchWork(
            key="error.too_much_work_pixels",
            size=f"{width}×{height}",
            steps=int(params.get("steps", PARAMS["steps"].default)),
            work=_megapixel_steps(work),
            limit=_megapixel_steps(settings.max_image_work),
        )


def check_speech_length(params: Mapping[str, Any], text: str, settings: Settings) -> None:
    """Refuse a text longer than one voice note may read (`max_speech_chars`)."""
    if len(text) > settings.max_speech_chars:
        raise InputTooLong(length=len(text), limit=settings.max_speech_chars)


def _megapixel_steps(value: float) -> str:
    return f"{math.ceil(value * 10) / 10:g}"
