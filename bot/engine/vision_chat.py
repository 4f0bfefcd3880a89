"""Conversations with a model that sees: pictures in a turn, on an image-text-to-text model.

A `ChatPrompt` whose turns carry pictures is rendered with the processor's own
chat template, each shown picture an `{"type": "image"}` part, and trimmed to
the model's context counting what each picture really costs: the processor
expands one placeholder into its tiles' tokens (a SmolVLM photo is hundreds),
so pictures are counted by the processor, once each, and the chosen prompt is
checked again as the processor builds it. The newest `IMAGES_SHOWN` pictures of
a conversation are shown; older ones are named (see `bot.engine.chat`).

A photo costs a pass of the vision encoder per tile: SmolVLM reads a phone photo at
2048 px as 13 tiles of 512 (832 tokens), half a minute to the first word on two CPU
cores, so where the processor resizes to a longest edge the runner lowers it to
`vision_image_edge` (1024 px: five tiles) unless the operator says otherwise.

Continuous batching does not take pictures, so these models are micro-batched
(`unsupported_reason` sends them here) and still stream: the runner takes
controls (`bot.engine.controls`), hands each request its text as it grows, and
stops a request whose caller left at its next token, leaving the rest of the
batch running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from transformers import (
    AutoConfig,
    AutoModelForImageTextToText,
    AutoProcessor,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

from bot.engine.chat import ChatMessage, ChatPrompt, shown_images, trimmed_conversations
from bot.engine.controls import RequestControl
from bot.engine.inputs import ImageBytes, decode_image
from bot.engine.load_options import LoadOptions
from bot.errors import ContextTooLong


def sees_images(model_id: str, options: LoadOptions) -> bool:
    """Whether transformers runs this model's config as image-text-to-text (blocking: disk)."""
    config = AutoConfig.from_pretrained(model_id, token=options.token)
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


@dataclass(frozen=True)
class _Fitted:
    """A conversation that fits: the processor's inputs for it, and the turns that went."""

    text: str
    images: list[Image.Image]
    tokens: int
    dropped_turns: int


class VisionChatRunner:
    """Chat turns with pictures on one image-text-to-text model and its processor."""

    takes_controls = True

    def __init__(self, model: Any, processor: Any, image_edge: int | None = None) -> None:
        self.model = model
        self.processor = processor
        _cap_image_edge(processor, image_edge)
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if model.generation_config.pad_token_id is None:
            model.generation_config.pad_token_id = self.tokenizer.pad_token_id
        self._image_token = str(getattr(processor, "image_token", "<image>"))
        text_config = model.config.get_text_config()
        self.limit = int(getattr(text_config, "max_position_embeddings", 0) or 2048)

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> VisionChatRunner:
        processor = AutoProcessor.from_pretrained(model_id, token=options.token)
        model = AutoModelForImageTextToText.from_pretrained(
            model_id, dtype=options.dtype, token=options.token, use_safetensors=True
        )
        return cls(model.to(options.device).eval(), processor, options.vision_image_edge)

    def __call__(
        self,
        inputs: list[ChatPrompt],
        *,
        batch_size: int = 1,
        controls: list[RequestControl] | None = None,
        **params: Any,
    ) -> list[Any]:
        wanted = int(params.get("max_new_tokens", 0))
        fitted = [self.fit(prompt, wanted) for prompt in inputs]
        controls = controls or [RequestControl() for _ in inputs]
        batch = self._batch(fitted)
        prompt_length = batch["input_ids"].shape[1]
        streamer = _RowsStreamer(self.tokenizer, controls)
        with torch.inference_mode():
            tokens = self.model.generate(
                **batch,
                **params,
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList([_StopWhenGone(controls)]),
            )
        replies = self.tokenizer.batch_decode(tokens[:, prompt_length:], skip_special_tokens=True)
        return [
            None
            if control.stopped.is_set()
            else [{"generated_text": reply.strip(), "dropped_turns": chat.dropped_turns}]
            for reply, chat, control in zip(replies, fitted, controls, strict=True)
        ]

    def fit(self, prompt: ChatPrompt, max_new_tokens: int) -> _Fitted:
        """The longest recent part of the conversation that leaves room to answer, pictures
        counted as the processor expands them."""
        pictures: dict[int, tuple[Image.Image, int]] = {}
        last = 0
        for dropped, turns in trimmed_conversations(prompt):
            shown = shown_images(turns)
            images = [self._picture(image, pictures) for image in _shown(turns, shown)]
            text = self.processor.apply_chat_template(
                _parts(turns, shown), add_generation_prompt=True, tokenize=False
            )
            last = len(self.tokenizer(text)["input_ids"]) + sum(cost for _, cost in images)
            if last + max_new_tokens > self.limit:
                continue
            exact = self._batch([_Fitted(text, [image for image, _ in images], last, dropped)])
            last = int(exact["input_ids"].shape[1])
            if last + max_new_tokens <= self.limit:
                return _Fitted(text, [image for image, _ in images], last, dropped)
        raise ContextTooLong(tokens=last + max_new_tokens, limit=self.limit)

    def _picture(
        self, image: ImageBytes, seen: dict[int, tuple[Image.Image, int]]
    ) -> tuple[Image.Image, int]:
        """The decoded picture and the tokens it adds to a prompt, worked out once."""
        found = seen.get(id(image))
        if found is None:
            decoded = decode_image(image.data, image.max_pixels, image.max_bytes)
            alone = self.processor(text=[self._image_token], images=[[decoded]])
            placeholder = len(self.tokenizer(self._image_token)["input_ids"])
            found = seen[id(image)] = (decoded, len(alone["input_ids"][0]) - placeholder)
        return found

    def _batch(self, fitted: Sequence[_Fitted]) -> Any:
        """The processor's tensors for these prompts, padded on the left, on the model's device."""
        images = [chat.images for chat in fitted] if any(chat.images for chat in fitted) else None
        batch = self.processor(
            text=[chat.text for chat in fitted], images=images, padding=True, return_tensors="pt"
        )
        return batch.to(self.model.device).to(self.model.dtype)


def _cap_image_edge(processor: Any, edge: int | None) -> None:
    """Lower the longest edge the processor resizes photos to, never below one tile."""
    image_processor: Any = getattr(processor, "image_processor", None)
    longest = _longest_edge(getattr(image_processor, "size", None))
    if edge is None or longest is None:
        return
    tile = _longest_edge(getattr(image_processor, "max_image_size", None)) or 0
    image_processor.size = {"longest_edge": max(min(longest, edge), tile)}


def _longest_edge(size: Any) -> int | None:
    value = (
        size.get("longest_edge") if isinstance(size, dict) else getattr(size, "longest_edge", None)
    )
    return int(value) if value else None


def _shown(turns: Sequence[ChatMessage], shown: Sequence[int]) -> list[ImageBytes]:
    return [
        image
        for message, count in zip(turns, shown, strict=True)
        for image in message.images[len(message.images) - count :]
    ]


def _parts(turns: Sequence[ChatMessage], shown: Sequence[int]) -> list[dict[str, Any]]:
    """Messages as processors' chat templates take them: content as typed parts."""
    messages = []
    for message, count in zip(turns, shown, strict=True):
        text = message.as_dict(count)["content"]
        parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(count)]
        if text:
            parts.append({"type": "text", "text": text})
        messages.append({"role": message.role, "content": parts})
    return messages


class _RowsStreamer(BaseStreamer):
    """Each row's reply so far, told to its request as new tokens make it grow.

    `generate` calls `put` with the prompt first, then one token per row each step.
    """

    def __init__(self, tokenizer: Any, controls: Sequence[RequestControl]) -> None:
        self._tokenizer = tokenizer
        self._controls = controls
        self._tokens: list[list[int]] = [[] for _ in controls]
        self._shown = [""] * len(controls)
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for row, token in enumerate(value.reshape(len(self._controls), -1)[:, -1].tolist()):
            control = self._controls[row]
            if control.stopped.is_set():
                continue
            self._tokens[row].append(int(token))
            text = self._tokenizer.decode(self._tokens[row], skip_special_tokens=True).lstrip()
            if text and text != self._shown[row]:
                self._shown[row] = text
                control.text(text)

    def end(self) -> None:
        """Every row's last text was told as it came."""


class _StopWhenGone(StoppingCriteria):
    """A row whose caller left is finished now; the others go on."""

    def __init__(self, controls: Sequence[RequestControl]) -> None:
        self._controls = controls

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> Any:
        stopped = [control.stopped.is_set() for control in self._controls]
        return torch.tensor(stopped, dtype=torch.bool, device=input_ids.device)
