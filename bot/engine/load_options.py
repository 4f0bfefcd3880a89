"""Where and how every runner loads its model: one small value every runner module shares."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LoadOptions:
    """Where and how every runner loads its model."""

    device: str
    dtype: torch.dtype
    token: str | None = None
    # The longest side a model that sees reads a photo at, where its processor resizes
    # to one (`HFBOT_VISION_IMAGE_EDGE`); None keeps the model's own.
    vision_image_edge: int | None = None
    # False: the model's layers without its weights, for a runner whose forward pass
    # another runtime serves (an ONNX session checked against torch's recorded answers);
    # the weights file is never read and the layers' memory is never touched.
    weights: bool = True
