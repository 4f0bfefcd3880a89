"""Run Hugging Face models in this process: one `Runner` per (task, model).

A runner has a pipeline's call shape, `runner(list_of_inputs, batch_size=n,
**params) -> list of per-input results`, so the pool batches every task the
same way. Most tasks are transformers pipelines. Summarization, translation and
extractive question answering left `pipeline()` in transformers 5; the bot's
commands still offer them, so small runners here serve them with the same shape.
Remote code is never trusted: `trust_remote_code` is left at its default (off).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, cast

import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    VisionEncoderDecoderModel,
    pipeline,
)
from transformers.pipelines import check_task

from bot.engine.chat import ChatPrompt, chat_result, fit_conversation
from bot.engine.image_generation import PictureRunner
from bot.engine.inputs import decode_input
from bot.engine.load_options import LoadOptions
from bot.engine.speech import SpeechRunner
from bot.engine.vision_chat import VisionChatRunner, sees_images
from bot.errors import ContextTooLong
from bot.tasks import MASK_TOKENS

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Runner(Protocol):
    """Anything called like a pipeline on a list of inputs."""

    def __call__(self, inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]: ...


def resolve_device(setting: str) -> str:
    """`auto` means the fastest device this machine has."""
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    """`auto` is half precision on accelerators, float32 on CPU (where half is slower)."""
    if setting != "auto":
        return _DTYPES[setting]
    return torch.float16 if device in ("cuda", "mps") else torch.float32


RunnerLoader = Callable[[str, str, LoadOptions], "Runner"]
"""Blocking `(pipeline task, model id, options) -> Runner`."""

# transformers 5 builds a model inside context managers that patch the process, not the
# thread: `initialization.no_tie_weights` swaps `PreTrainedModel.tie_weights` for a no-op,
# saving what it found and putting that back on exit (`no_init_weights` does the same to
# torch.nn.init). When two loads overlap, the second saves the first's no-op and restores
# it last, so tying stays off for the rest of the process: every later model with tied
# embeddings keeps its lm_head on the meta device, and a matmul with a meta weight returns
# uninitialised memory as logits (random tokens, or NaN and "probability tensor contains
# inf, nan" in continuous batching). Each ModelCache loads on one thread, but caches (two
# replicas in one process, say) do not know of each other, so every load takes turns here.
# Upstream: huggingface/transformers#44940 (open) moves that state into a contextvar.
_LOADING = threading.Lock()


def load_runner(
    task: str,
    model_id: str,
    *,
    device: str,
    dtype: torch.dtype | str,
    token: str | None = None,
    vision_image_edge: int | None = None,
    weights: bool = True,
) -> Runner:
    """Load one model for one task (blocking: call it in an executor).

    The loader is the task's row of `RUNNERS`; an unknown task raises KeyError.
    Loads in this process take turns (see `_LOADING`): overlapping ones break later models.
    `weights=False` asks for the model's layers only (see `LoadOptions.weights`); the
    loaders of the tasks that run on ONNX Runtime honour it, others load the weights.
    """
    if isinstance(dtype, str):
        dtype = resolve_dtype(dtype, device)
    options = LoadOptions(device, dtype, token, vision_image_edge, weights)
    with _LOADING:
        return RUNNERS[task](task, model_id, options)


def _pipeline(task: str, model_id: str, options: LoadOptions) -> Any:
    """A transformers pipeline that reads safetensors weights only and runs no remote code.

    Its tokenizer learns how many tokens the model really reads, so truncation
    (and the checks below) hold even where the tokenizer's own limit is unset.
    Without weights, the pipeline is built around the task's model class made
    from the config alone; its tokenizer and processors still come from `model_id`.
    """
    if options.weights:
        loaded = pipeline(
            task,
            model=model_id,
            device=options.device,
            dtype=options.dtype,
            token=options.token,
            model_kwargs={"use_safetensors": True},
        )
    else:
        targeted = check_task(task)[1]
        loaded = pipeline(
            task,
            model=_without_weights(targeted["pt"], model_id, options),
            device=options.device,
            token=options.token,
            **_components(targeted["impl"], model_id),
        )
    if loaded.tokenizer is not None:
        loaded.tokenizer.model_max_length = model_max_tokens(loaded.tokenizer, loaded.model)
    return loaded


def _components(impl: str | type[Any], model_id: str) -> dict[str, str]:
    """Where a pipeline built around a model object finds each part its class reads
    (tokenizer, processors): the model's own folder or repository, as when it loads by id.
    A part the class never loads is left out (False); an optional one (None) is tried.
    `impl` is the task's pipeline class, or its dotted path as transformers' table keeps it."""
    if isinstance(impl, str):
        module, _, name = impl.rpartition(".")
        impl = cast(type[Any], getattr(importlib.import_module(module), name))
    parts = ("tokenizer", "image_processor", "feature_extractor", "processor")
    return {part: model_id for part in parts if getattr(impl, f"_load_{part}") is not False}


def _without_weights(
    classes: Sequence[type[Any]], model_id: str, options: LoadOptions
) -> PreTrainedModel:
    """The model of the first of `classes` that knows its config, with uninitialised weights.

    Built on the meta device and given empty storage on the real one: the weights
    file is never read, and no page of that storage is written, so it takes address
    space but no resident memory. Nothing may compute with it: it is there for the
    pipeline's code around the forward pass, which reads the model's config, class,
    dtype and device (see `LoadOptions.weights`).
    """
    config = AutoConfig.from_pretrained(model_id, token=options.token)
    for model_class in classes:
        try:
            with torch.device("meta"):
                model = model_class.from_config(config, dtype=options.dtype)
        except ValueError:  # an auto class that does not know this architecture
            continue
        return cast(PreTrainedModel, model.to_empty(device=options.device).eval())
    raise ValueError(f"no model class of this task knows {type(config).__name__}")


def model_max_tokens(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The most tokens one input may have: the tokenizer's limit, within the model's positions.

    Many tokenizers leave `model_max_length` unset (a huge number); positions
    are then the limit, less two for RoBERTa-style models whose position ids
    start after the padding index.
    """
    limit = int(tokenizer.model_max_length)
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and limit > positions:
        limit = positions - 2
    return limit


def token_window(
    tokenizer: PreTrainedTokenizerBase, text: str, limit: int, keep: int | None = None
) -> str:
    """The longest stretch of `text` of at most `limit` tokens, around token `keep` if given.

    Long inputs are cut here, on token boundaries, rather than failing a batch:
    a 2,000-character Chinese text is 2,000 tokens to a model that reads 512.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if len(ids) <= limit:
        return text
    start = 0 if keep is None else max(0, min(keep - limit // 2, len(ids) - limit))
    end = start + limit
    return text[offsets[start][0] : offsets[end - 1][1]]


class GenerationRunner:
    """The text-generation pipeline, refusing a prompt the model cannot continue.

    Continuous batching checks lengths itself; requests it cannot serve come
    here, where a prompt plus max_new_tokens past the model's positions would
    fail the whole batch instead of the one request.
    """

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> GenerationRunner:
        return cls(_pipeline(task, model_id, options))

    def __init__(self, generator: Any) -> None:
        self._pipeline = generator
        self.model = generator.model
        self.tokenizer = generator.tokenizer
        _pad_left(self.tokenizer, self.model)

    def __call__(self, inputs: list[str], *, batch_size: int, **params: Any) -> list[Any]:
        positions = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None
        )
        wanted = int(params.get("max_new_tokens", 0))
        for prompt in inputs:
            tokens = len(self.tokenizer(prompt, verbose=False)["input_ids"]) + wanted
            if positions and tokens > positions:
                raise ContextTooLong(tokens=tokens, limit=positions)
        return list(self._pipeline(inputs, batch_size=batch_size, **params))


class ChatRunner:
    """Conversations on a decoder-only model, for turns continuous batching cannot serve.

    Each `ChatPrompt` is rendered with the model's chat template and trimmed
    to its context (`bot.engine.chat`); prompts of a batch are padded on the
    left and generated together; each answer is the reply alone.
    """

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> ChatRunner:
        return cls(_pipeline("text-generation", model_id, options))

    def __init__(self, generator: Any) -> None:
        self.model = generator.model
        self.tokenizer = generator.tokenizer
        _pad_left(self.tokenizer, self.model)

    def __call__(self, inputs: list[ChatPrompt], *, batch_size: int, **params: Any) -> list[Any]:
        wanted = int(params.get("max_new_tokens", 0))
        limit = model_max_tokens(self.tokenizer, self.model)
        fitted = [fit_conversation(self.tokenizer, prompt, wanted, limit) for prompt in inputs]
        batch = self.tokenizer.pad(
            {"input_ids": [chat.input_ids for chat in fitted]}, return_tensors="pt"
        ).to(self.model.device)
        with torch.inference_mode():
            tokens = self.model.generate(**batch, **params)
        replies = self.tokenizer.batch_decode(
            tokens[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
        )
        return [[chat_result(reply, chat)] for reply, chat in zip(replies, fitted, strict=True)]


def load_chat_runner(task: str, model_id: str, options: LoadOptions) -> Runner:
    """Conversations on a model that sees pictures go to the vision runner; on any other,
    to the text-only one."""
    if sees_images(model_id, options):
        return VisionChatRunner.load(task, model_id, options)
    return ChatRunner.load(task, model_id, options)


class PipelineWrapper:
    """A transformers pipeline behind a runner that prepares its inputs or outputs.

    `model` is the pipeline's own: setting it (the ONNX path does) changes what the
    pipeline runs.
    """

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    @property
    def model(self) -> Any:
        return self._pipeline.model

    @model.setter
    def model(self, model: Any) -> None:
        self._pipeline.model = model


class MediaDecodingRunner(PipelineWrapper):
    """A vision or speech pipeline fed the bytes people sent (`bot.engine.inputs.ImageBytes` / `AudioBytes`).

    Decoding happens here, in the pool's executor, so Pillow and PyAV never
    block the event loop, and audio is resampled to the rate of this model's
    own feature extractor. A file that fails to decode fails its batch; the
    micro-batcher then runs the batch one by one, so only its sender gets the error.

    Recordings run in groups of similar length: a batch pads every clip to the
    longest, and on a CPU a padded second costs as much as a spoken one, so a
    2-second note batched with an 8-second one would cost four times its due.
    """

    SIMILAR_LENGTH: ClassVar[float] = 1.25

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> MediaDecodingRunner:
        return cls(_pipeline(task, model_id, options))

    def __init__(self, media_pipeline: Any) -> None:
        super().__init__(media_pipeline)
        extractor = getattr(media_pipeline, "feature_extractor", None)
        self.sampling_rate: int | None = getattr(extractor, "sampling_rate", None)

    def __call__(self, inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
        decoded = [decode_input(item, self.sampling_rate) for item in inputs]
        if self.sampling_rate is None:
            return list(self._pipeline(decoded, batch_size=batch_size, **params))
        results: list[Any] = [None] * len(decoded)
        for group in self._similar_lengths(decoded):
            clips = [decoded[index] for index in group]
            heard = self._pipeline(clips, batch_size=len(clips), **params)
            for index, result in zip(group, heard, strict=True):
                results[index] = result
        return results

    def _similar_lengths(self, clips: list[Any]) -> list[list[int]]:
        """Indices grouped, shortest first, so no clip in a group is 1.25x another's length."""
        lengths = [len(clip["raw"]) if isinstance(clip, dict) else len(clip) for clip in clips]
        groups: list[list[int]] = []
        for index in sorted(range(len(clips)), key=lengths.__getitem__):
            if groups and lengths[index] <= lengths[groups[-1][0]] * self.SIMILAR_LENGTH:
                groups[-1].append(index)
            else:
                groups.append([index])
        return groups


class CaptionRunner:
    """Image captioning with a vision encoder-decoder model and `generate`.

    transformers 5 removed the `image-to-text` pipeline, and `image-text-to-text`
    wants a text prompt and fails on vision encoder-decoders (no
    `decoder_input_ids`), so captioners such as nlpconnect/vit-gpt2-image-captioning
    run here. Each input gives `[{"generated_text": …}]`, as the old pipeline did.
    """

    def __init__(
        self, model: PreTrainedModel, image_processor: Any, tokenizer: PreTrainedTokenizerBase
    ) -> None:
        self.model = model
        self.image_processor = image_processor
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> CaptionRunner:
        model = VisionEncoderDecoderModel.from_pretrained(
            model_id, dtype=options.dtype, token=options.token, use_safetensors=True
        )
        image_processor = AutoImageProcessor.from_pretrained(model_id, token=options.token)
        tokenizer = AutoTokenizer.from_pretrained(model_id, token=options.token)
        return cls(model.to(options.device).eval(), image_processor, tokenizer)

    def __call__(self, inputs: list[Any], *, batch_size: int = 8, **params: Any) -> list[Any]:
        images = [decode_input(item) for item in inputs]
        results: list[Any] = []
        for chunk in _chunks(images, batch_size):
            pixels = self.image_processor(images=list(chunk), return_tensors="pt").pixel_values
            with torch.inference_mode():
                tokens = self.model.generate(
                    pixel_values=pixels.to(self.model.device, self.model.dtype), **params
                )
            texts = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
            results.extend([{"generated_text": text.strip()}] for text in texts)
        return results


class MaskNormalizingRunner(PipelineWrapper):
    """Fill-mask where people may write `<mask>` or `[MASK]`, whatever the model's own token is."""

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> MaskNormalizingRunner:
        return cls(_pipeline(task, model_id, options))

    def __init__(self, fill_mask: Any) -> None:
        super().__init__(fill_mask)
        self._mask = fill_mask.tokenizer.mask_token

    def __call__(self, inputs: list[str], *, batch_size: int, **params: Any) -> list[Any]:
        texts = [self._around_mask(MASK_TOKENS.sub(self._mask, text)) for text in inputs]
        results = self._pipeline(texts, batch_size=batch_size, **params)
        return results if len(inputs) > 1 else [results]

    def _around_mask(self, text: str) -> str:
        """A long text cut to what the model reads, keeping the gap and the words around it."""
        tokenizer = self._pipeline.tokenizer
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        mask_id = tokenizer.mask_token_id
        keep = ids.index(mask_id) if mask_id in ids else None
        return token_window(tokenizer, text, tokenizer.model_max_length - 2, keep)


def _pad_left(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> None:
    """A decoder continues from the last position, so batched prompts must be padded on the left."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    size = max(1, size)
    return [items[start : start + size] for start in range(0, len(items), size)]


class Seq2SeqRunner:
    """Summarization and translation with an encoder-decoder model and `generate`.

    Each input gives `{"summary_text": …}` (or `translation_text`), or a list of
    them when `num_return_sequences` > 1, as transformers 4's pipelines did.
    """

    OUTPUT_KEYS: ClassVar[dict[str, str]] = {
        "summarization": "summary_text",
        "translation": "translation_text",
    }

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, output_key: str
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.output_key = output_key
        task_params = (getattr(model.config, "task_specific_params", None) or {}).get(
            "summarization" if output_key == "summary_text" else "translation", {}
        )
        self.prefix: str = task_params.get("prefix", "") or ""

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> Seq2SeqRunner:
        model = AutoModelForSeq2SeqLM.from_pretrained(
            model_id, dtype=options.dtype, token=options.token, use_safetensors=True
        )
        tokenizer = AutoTokenizer.from_pretrained(model_id, token=options.token)
        return cls(model.to(options.device).eval(), tokenizer, cls.OUTPUT_KEYS[task])

    def __call__(self, inputs: list[str], *, batch_size: int = 8, **params: Any) -> list[Any]:
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if positions and params.get("max_new_tokens", 0) >= positions:
            params["max_new_tokens"] = positions - 1  # past the last position the model cannot go
        count = int(params.get("num_return_sequences", 1))
        if count > 1 and not params.get("do_sample") and "num_beams" not in params:
            params["num_beams"] = max(count, self.model.generation_config.num_beams or 1)
        results: list[Any] = []
        for chunk in _chunks(inputs, batch_size):
            texts = self._generate([self.prefix + text for text in chunk], params)
            for index in range(len(chunk)):
                outputs = [{self.output_key: t} for t in texts[index * count : (index + 1) * count]]
                results.append(outputs if count > 1 else outputs[0])
        return results

    def _generate(self, texts: list[str], params: dict[str, Any]) -> list[str]:
        positions = getattr(self.model.config, "max_position_embeddings", None)
        max_length = min(positions, self.tokenizer.model_max_length) if positions else None
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        with torch.inference_mode():
            tokens = self.model.generate(**encoded.to(self.model.device), **params)
        return [t.strip() for t in self.tokenizer.batch_decode(tokens, skip_special_tokens=True)]


class ExtractiveQARunner:
    """Extractive question answering: the likeliest span of the context that answers.

    Inputs are `{"question": …, "context": …}`; each gives `{"answer", "score",
    "start", "end"}` with character offsets into the context. Contexts longer than
    the model's window are truncated rather than split into strides: chat messages
    are short, and one window keeps a batch one forward pass.
    """

    MAX_ANSWER_TOKENS: ClassVar[int] = 30
    MAX_LENGTH: ClassVar[int] = 384
    # A question longer than this is cut: the window must leave room for the context.
    MAX_QUESTION_TOKENS: ClassVar[int] = 64

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, task: str, model_id: str, options: LoadOptions) -> ExtractiveQARunner:
        model = (
            AutoModelForQuestionAnswering.from_pretrained(
                model_id, dtype=options.dtype, token=options.token, use_safetensors=True
            )
            if options.weights
            else _without_weights((AutoModelForQuestionAnswering,), model_id, options)
        )
        tokenizer = AutoTokenizer.from_pretrained(model_id, token=options.token)
        tokenizer.model_max_length = model_max_tokens(tokenizer, model)
        return cls(model.to(options.device).eval(), tokenizer)

    def __call__(
        self, inputs: list[dict[str, str]], *, batch_size: int = 8, **params: Any
    ) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for chunk in _chunks(inputs, batch_size):
            results.extend(self._answer(list(chunk)))
        return results

    def _answer(self, items: list[dict[str, str]]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            [
                token_window(self.tokenizer, item["question"], self.MAX_QUESTION_TOKENS)
                for item in items
            ],
            [item["context"] for item in items],
            padding=True,
            truncation="only_second",
            max_length=min(self.tokenizer.model_max_length, self.MAX_LENGTH),
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping")
        with torch.inference_mode():
            output = self.model(**encoded.to(self.model.device))
        starts = output.start_logits.float().cpu()
        ends = output.end_logits.float().cpu()
        answers = []
        for row, item in enumerate(items):
            in_context = torch.tensor([sid == 1 for sid in encoded.sequence_ids(row)])
            start, end, score = self._best_span(starts[row], ends[row], in_context)
            char_start, char_end = int(offsets[row][start][0]), int(offsets[row][end][1])
            answers.append(
                {
                    "answer": item["context"][char_start:char_end],
                    "score": score,
                    "start": char_start,
                    "end": char_end,
                }
            )
        return answers

    def _best_span(
        self, start_logits: torch.Tensor, end_logits: torch.Tensor, in_context: torch.Tensor
    ) -> tuple[int, int, float]:
        """Highest p(start)·p(end) over context spans with start ≤ end < start + 30 tokens."""
        masked = torch.finfo(start_logits.dtype).min
        p_start = start_logits.masked_fill(~in_context, masked).softmax(-1)
        p_end = end_logits.masked_fill(~in_context, masked).softmax(-1)
        scores = torch.triu(p_start[:, None] * p_end[None, :])
        scores = torch.tril(scores, diagonal=self.MAX_ANSWER_TOKENS - 1)
        scores = scores * (in_context[:, None] & in_context[None, :])
        best = int(scores.argmax())
        start, end = divmod(best, scores.shape[1])
        return start, end, float(scores[start, end])


RUNNERS: dict[str, RunnerLoader] = {
    "text-classification": _pipeline,
    "text-generation": GenerationRunner.load,
    "chat": load_chat_runner,
    "summarization": Seq2SeqRunner.load,
    "translation": Seq2SeqRunner.load,
    "token-classification": _pipeline,
    "fill-mask": MaskNormalizingRunner.load,
    "zero-shot-classification": _pipeline,
    "question-answering": ExtractiveQARunner.load,
    "image-classification": MediaDecodingRunner.load,
    "image-to-text": CaptionRunner.load,
    "zero-shot-image-classification": MediaDecodingRunner.load,
    "automatic-speech-recognition": MediaDecodingRunner.load,
    "text-to-image": PictureRunner.load,
    "text-to-speech": SpeechRunner.load,
}
"""How each pipeline task of the registry is loaded; tests/tasks checks it covers every row."""
