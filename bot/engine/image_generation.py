"""Pictures from words: a diffusers text-to-image pipeline, one picture at a time, step by step.

The runner loads any text-to-image pipeline diffusers has (`AutoPipelineForText2Image`)
from the folder vetting approved, safetensors only, with no code of the model's own.
Each request is one picture: its own seed (drawn when the person asked for none,
and told back so the picture can be drawn again), size, steps and guidance. The
registry bounds this task's batches to one request, and a picture is drawn
alone, so each one reports its own steps (`RequestControl.progress`) and stops
on its own between steps when its caller has gone (Stop, /cancel, a timeout),
freeing the executor at once instead of after the last step.

On a CPU two pictures in one pipeline call cost at least what two calls do (the
64×64 latents already fill the cores; measured in bench/RESULTS.md), so drawing
alone loses nothing there.
"""

from __future__ import annotations

import inspect
import io
import secrets
from typing import Any

import torch
from PIL import Image

from bot.engine.controls import RequestControl, Stopped
from bot.engine.load_options import LoadOptions
from bot.errors import PictureWithheld
from bot.tasks import Picture, picture_size

# Seeds as torch.Generator takes them and people can type them back: 0 … 2³² − 1.
SEED_RANGE = 2**32


class PictureRunner:
    """One diffusers pipeline behind the pool: prompts in, `Picture`s (PNG) out."""

    takes_controls = True

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        pipeline.set_progress_bar_config(disable=True)
        # The pipeline's torch modules, so the model cache counts what they weigh.
        self.model = torch.nn.ModuleList(
            [part for part in pipeline.components.values() if isinstance(part, torch.nn.Module)]
        )
        self._steps_callback = (
            "callback_on_step_end" in inspect.signature(pipeline.__call__).parameters
        )

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> PictureRunner:
        # diffusers takes a second to import and is needed only once a picture is asked for.
        from diffusers import AutoPipelineForText2Image

        pipeline = AutoPipelineForText2Image.from_pretrained(
            model_id, dtype=options.dtype, token=options.token, use_safetensors=True
        )
        return cls(pipeline.to(options.device))

    def __call__(
        self,
        inputs: list[str],
        *,
        batch_size: int = 1,
        controls: list[RequestControl] | None = None,
        steps: int = 1,
        guidance: float = 0.0,
        size: str = "512x512",
        seed: int = -1,
        **params: Any,
    ) -> list[Picture | None]:
        """A picture per prompt, drawn one after another; None for one whose caller left."""
        pictures: list[Picture | None] = []
        for index, prompt in enumerate(inputs):
            control = controls[index] if controls is not None else RequestControl()
            try:
                pictures.append(self._draw(prompt, control, steps, guidance, size, seed))
            except Stopped:
                pictures.append(None)
        return pictures

    def _draw(
        self,
        prompt: str,
        control: RequestControl,
        steps: int,
        guidance: float,
        size: str,
        seed: int,
    ) -> Picture:
        if control.stopped.is_set():
            raise Stopped()
        width, height = picture_size(size)
        chosen = seed if seed >= 0 else secrets.randbelow(SEED_RANGE)
        call: dict[str, Any] = {
            "prompt": prompt,
            "num_inference_steps": steps,
            "guidance_scale": guidance,
            "width": width,
            "height": height,
            # A CPU generator draws the same noise on every device: a seed means one picture.
            "generator": torch.Generator(device="cpu").manual_seed(chosen),
            "output_type": "pil",
        }
        if self._steps_callback:

            def on_step(pipeline: Any, index: int, timestep: Any, tensors: dict[str, Any]) -> Any:
                if control.stopped.is_set():
                    raise Stopped()
                control.progress(index + 1, int(getattr(pipeline, "num_timesteps", steps)))
                return tensors

            call["callback_on_step_end"] = on_step
        output = self.pipeline(**call)
        if any(getattr(output, "nsfw_content_detected", None) or ()):
            raise PictureWithheld()
        return Picture(_png(output.images[0]), chosen, width, height, steps)


def _png(image: Image.Image) -> bytes:
    """PNG, lossless: Telegram recompresses photos itself, so a JPEG here would be lossy twice."""
    out = io.BytesIO()
    image.convert("RGB").save(out, format="PNG")
    return out.getvalue()
