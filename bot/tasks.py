"""The task registry: what each command runs, with which default model and parameters.

Like transformers' own `SUPPORTED_TASKS`, code reads this table instead of
branching on task names. Adding a command is adding one `TaskSpec`.

`pipeline_task` is the runner task the pool loads. Most are transformers
pipeline tasks; `summarization`, `translation` and `question-answering` left
`pipeline()` in transformers 5 and are served by the pool's own runners with
the same call shape (see `bot/backends/local.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from bot import formatting
from bot.errors import InvalidParamValue, UnknownParam, UnknownTask

InputKind = Literal["text", "image", "audio"]
# How a command's words become pipeline inputs (parsers live in handlers/parsing.py).
InputStyle = Literal["text", "labels", "question", "mask", "translate"]
Formatter = Callable[[Any, str], str]
ParamType = type[int] | type[float] | type[bool]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class ParamSpec:
    """One generation parameter, under transformers' own name, with its allowed range."""

    name: str
    type: ParamType
    default: int | float | bool
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, raw: object, maximum: float | None = None) -> int | float | bool:
        """Turn what a user typed (or a stored JSON value) into a valid value, or refuse it."""
        upper = self.maximum if maximum is None else maximum
        value = self._parse(raw)
        if value is None or (
            self.type is not bool
            and (
                (self.minimum is not None and value < self.minimum)
                or (upper is not None and value > upper)
            )
        ):
            raise InvalidParamValue(
                param=self.name, value=str(raw), allowed=self.describe_range(upper)
            )
        return value

    def describe_range(self, maximum: float | None = None) -> str:
        upper = self.maximum if maximum is None else maximum
        if self.type is bool:
            return "on | off"
        return f"{_fmt(self.minimum)} … {_fmt(upper)}"

    def _parse(self, raw: object) -> int | float | bool | None:
        if self.type is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            return True if text in _TRUE else False if text in _FALSE else None
        if isinstance(raw, bool):
            return None
        try:
            number = float(str(raw).strip()) if not isinstance(raw, int | float) else float(raw)
        except ValueError:
            return None
        if number != number or number in (float("inf"), float("-inf")):
            return None
        if self.type is int:
            return int(number) if number.is_integer() else None
        return number


def _fmt(value: float | None) -> str:
    if value is None:
        return "∞"
    return str(int(value)) if float(value).is_integer() else str(value)


PARAMS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("max_new_tokens", int, 40, 1, 1024),
        ParamSpec("temperature", float, 0.8, 0.05, 2.0),
        ParamSpec("top_k", int, 50, 0, 500),
        ParamSpec("top_p", float, 0.95, 0.05, 1.0),
        ParamSpec("repetition_penalty", float, 1.0, 1.0, 2.0),
        ParamSpec("num_return_sequences", int, 1, 1, 5),
        ParamSpec("do_sample", bool, True),
    )
}

GENERATION_PARAMS = tuple(PARAMS)

# User-wide switches, not tied to a task; validated like parameters.
OPTIONS: dict[str, ParamSpec] = {
    spec.name: spec
    for spec in (
        ParamSpec("stream", bool, True),
        # Voice notes in private chats are transcribed without a command (groups: command only).
        ParamSpec("auto_transcribe", bool, False),
    )
}
SEQ2SEQ_PARAMS = ("max_new_tokens", "num_return_sequences", "repetition_penalty")
SAMPLING_ONLY = ("temperature", "top_k", "top_p")


@dataclass(frozen=True)
class TaskSpec:
    """One command: what it runs, on what input, with which default model and parameters."""

    name: str
    pipeline_task: str
    default_model: str
    formatter: Formatter
    input_kind: InputKind = "text"
    input_style: InputStyle = "text"
    params: tuple[str, ...] = ()
    defaults: Mapping[str, int | float | bool] = field(default_factory=dict)
    call_params: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    streams: bool = False

    def default_params(self) -> dict[str, int | float | bool]:
        """Registry defaults for every parameter this task takes, task overrides applied."""
        return {name: self.defaults.get(name, PARAMS[name].default) for name in self.params}

    def call_kwargs(self, params: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for the pipeline call: fixed ones, the user's, then the request's.

        Sampling knobs are dropped when sampling is off: greedy decoding ignores
        them, and identical kwargs let more requests share one batch.
        """
        kwargs = {**self.call_params, **params, **extra}
        if kwargs.get("do_sample") is False:
            for name in SAMPLING_ONLY:
                kwargs.pop(name, None)
        return kwargs


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "sentiment",
            "text-classification",
            "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            formatting.format_classification,
            call_params={"top_k": None},
            aliases=("sentiment-analysis",),
        ),
        TaskSpec(
            "generate",
            "text-generation",
            "distilbert/distilgpt2",
            formatting.format_generation,
            params=GENERATION_PARAMS,
            streams=True,
        ),
        TaskSpec(
            "summarize",
            "summarization",
            "sshleifer/distilbart-cnn-12-6",
            formatting.format_summary,
            params=SEQ2SEQ_PARAMS,
            defaults={"max_new_tokens": 120},
        ),
        TaskSpec(
            "translate",
            "translation",
            "Helsinki-NLP/opus-mt-en-zh",
            formatting.format_translation,
            input_style="translate",
            params=SEQ2SEQ_PARAMS,
            defaults={"max_new_tokens": 200},
        ),
        TaskSpec(
            "ner",
            "token-classification",
            "dslim/bert-base-NER",
            formatting.format_entities,
            call_params={"aggregation_strategy": "simple"},
        ),
        TaskSpec(
            "fill",
            "fill-mask",
            "distilbert/distilroberta-base",
            formatting.format_fill_mask,
            input_style="mask",
            aliases=("fill-mask",),
        ),
        TaskSpec(
            "classify",
            "zero-shot-classification",
            "facebook/bart-large-mnli",
            formatting.format_zero_shot,
            input_style="labels",
        ),
        TaskSpec(
            "ask",
            "question-answering",
            "distilbert/distilbert-base-cased-distilled-squad",
            formatting.format_answer,
            input_style="question",
        ),
        TaskSpec(
            "whatis",
            "image-classification",
            "google/vit-base-patch16-224",
            formatting.format_classification,
            input_kind="image",
            call_params={"top_k": 5},
        ),
        TaskSpec(
            "caption",
            "image-to-text",
            "nlpconnect/vit-gpt2-image-captioning",
            formatting.format_caption,
            input_kind="image",
            call_params={"max_new_tokens": 30},
        ),
        TaskSpec(
            "labels",
            "zero-shot-image-classification",
            "openai/clip-vit-base-patch32",
            formatting.format_classification,
            input_kind="image",
            input_style="labels",
        ),
        TaskSpec(
            "transcribe",
            "automatic-speech-recognition",
            "openai/whisper-tiny",
            formatting.format_transcript,
            input_kind="audio",
        ),
    )
}

# /translate <lang>: <text> picks the English→<lang> model of the Opus-MT family.
TRANSLATION_TARGETS: dict[str, str] = {
    lang: f"Helsinki-NLP/opus-mt-en-{lang}"
    for lang in ("zh", "fr", "de", "es", "ru", "it", "ar", "nl", "sv", "uk", "vi", "hi")
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by command name, alias or pipeline task name."""
    key = name.strip().lower().lstrip("/")
    if key in TASKS:
        return TASKS[key]
    for spec in TASKS.values():
        if key == spec.pipeline_task or key in spec.aliases:
            return spec
    raise UnknownTask(task=name, known=", ".join(TASKS))


@dataclass(frozen=True)
class ParamRules:
    """The parameter registry with this bot's caps applied (caps come from Settings)."""

    caps: Mapping[str, float] = field(default_factory=dict)

    def validate(self, task: str, params: Mapping[str, object]) -> dict[str, int | float | bool]:
        """Coerce and range-check parameters for one task; raise on the first bad one."""
        spec = get_task(task)
        clean: dict[str, int | float | bool] = {}
        for name, raw in params.items():
            if name not in spec.params:
                raise UnknownParam(param=name, task=spec.name, known=", ".join(spec.params) or "—")
            clean[name] = PARAMS[name].coerce(raw, self.caps.get(name))
        return clean

    def validate_options(self, options: Mapping[str, object]) -> dict[str, int | float | bool]:
        """Coerce and check user-wide options (e.g. `stream`)."""
        clean: dict[str, int | float | bool] = {}
        for name, raw in options.items():
            if name not in OPTIONS:
                raise UnknownParam(param=name, task="—", known=", ".join(OPTIONS))
            clean[name] = OPTIONS[name].coerce(raw)
        return clean

    def describe(self, name: str) -> str:
        return PARAMS[name].describe_range(self.caps.get(name))


def param_rules_from_caps(max_new_tokens: int, num_return_sequences: int) -> ParamRules:
    """Caps an operator sets in Settings narrow the registry's own ranges, never widen them."""
    return ParamRules(
        caps={
            "max_new_tokens": min(
                max_new_tokens, PARAMS["max_new_tokens"].maximum or max_new_tokens
            ),
            "num_return_sequences": min(
                num_return_sequences,
                PARAMS["num_return_sequences"].maximum or num_return_sequences,
            ),
        }
    )
