"""Running models off the event loop: the pipeline pool and the engines behind it.

`PipelinePool.submit` is the one door; behind it each (task, model) has an
engine chosen from the task registry. Knows nothing of Telegram.

What the rest of the bot may use is exported here, and handlers import only
this surface. The exports resolve on first use: the pool's modules import torch
and transformers (seconds), and `hfbot run` must be able to check its settings,
and a metrics label be cleaned, before any of that is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.engine.chat import IMAGE_PLACEHOLDER, IMAGES_SHOWN, ChatMessage, ChatPrompt
    from bot.engine.fair_turns import Caller
    from bot.engine.inputs import AudioBytes, ImageBytes, MediaLimits, pick_photo_size
    from bot.engine.metrics import public_model_id
    from bot.engine.model_input import ModelInput
    from bot.engine.pool import PipelinePool

_EXPORTS = {
    "AudioBytes": "bot.engine.inputs",
    "Caller": "bot.engine.fair_turns",
    "ChatMessage": "bot.engine.chat",
    "ChatPrompt": "bot.engine.chat",
    "IMAGE_PLACEHOLDER": "bot.engine.chat",
    "IMAGES_SHOWN": "bot.engine.chat",
    "ImageBytes": "bot.engine.inputs",
    "MediaLimits": "bot.engine.inputs",
    "ModelInput": "bot.engine.model_input",
    "PipelinePool": "bot.engine.pool",
    "pick_photo_size": "bot.engine.inputs",
    "public_model_id": "bot.engine.metrics",
}
__all__ = [
    "IMAGES_SHOWN",
    "IMAGE_PLACEHOLDER",
    "AudioBytes",
    "Caller",
    "ChatMessage",
    "ChatPrompt",
    "ImageBytes",
    "MediaLimits",
    "ModelInput",
    "PipelinePool",
    "pick_photo_size",
    "public_model_id",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
