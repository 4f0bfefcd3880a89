"""The task registry: one row per command, holding everything about it.

Like transformers' own `SUPPORTED_TASKS`, code reads this table instead of
branching on task names: the handlers take a row's input kind and style, the
pool its engine kind and how to read its results, vetting its model kind,
replies its formatter. Adding a command is adding one `TaskSpec`; the tables that cannot live here (runner
loaders in the engine, demo model builders, i18n catalogs) are keyed by these
rows, and tests/tasks fails when a row is missing from any of them.

`pipeline_task` is the runner task the pool loads. Most are transformers
pipeline tasks; `summarization`, `translation`, `question-answering` and
`image-to-text` left `pipeline()` in transformers 5 and are served by the
engine's own runners with the same call shape (see `bot/engine/runners.py`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any, Literal, TypeVar

from bot.config import Settings
from bot.errors import UnknownParam, UnknownTask
from bot.tasks import formatters, readers
from bot.tasks.outputs import (
    Answer,
    ChatReply,
    Completions,
    Entities,
    Output,
    Picture,
    Ranking,
    Texts,
    Transcript,
    VoiceNote,
)
from bot.tasks.params import (
    CHAT_PARAMS,
    GENERATION_PARAMS,
    OPTIONS,
    PARAMS,
    PICTURE_PARAMS,
    SAMPLING_ONLY,
    SEQ2SEQ_PARAMS,
    Value,
)
from bot.tasks.voices import voice_for
from bot.tasks.work import check_drawing_work, check_speech_length

# What a command works on: a text, a photo, a sound, or the next turn of a conversation.
InputKind = Literal["text", "image", "audio", "chat"]
# How a command's words become pipeline inputs (parsers live in handlers/request/parsing.py).
InputStyle = Literal["text", "labels", "question", "mask", "translate"]
# Which engine of the pool serves a task: micro-batched one-shot calls, or
# transformers' continuous batching (decoder-only generation, streamed).
EngineKind = Literal["microbatch", "continuous"]
# How an answer travels: a text message, a photo (`bot.tasks.outputs.Picture`) or a voice
# note (`bot.tasks.outputs.VoiceNote`), each with the formatter's text as its caption.
OutputKind = Literal["text", "picture", "voice"]
# `check(call parameters, request text, settings)`: raises TooMuchWork (or InputTooLong)
# before a request is queued; see `bot.tasks.work`.
WorkCheck = Callable[[Mapping[str, Any], str, Settings], None]
# `choose(request text, the person's language, the operator's default_models)`: the model
# that serves a request when nobody chose one (a voice by the text's language).
ModelChooser = Callable[[str, str, Mapping[str, str]], str]


@dataclass(frozen=True)
class ModelKind:
    """Which models can serve a task, as vetting reads it from metadata alone.

    `tags` are Hub pipeline tags as shell patterns (`translation_*_to_*`), the
    first being the one to search the Hub by; `architecture_suffixes` are
    matched against config `architectures` when a model carries no tag;
    `required_label` is a word one of the model's labels must contain
    (zero-shot needs an NLI head with an entailment label); a conversation
    needs a model that ships a chat template.
    """

    tags: tuple[str, ...]
    architecture_suffixes: tuple[str, ...] = ()
    required_label: str | None = None
    needs_chat_template: bool = False

    def accepts_tag(self, tag: str) -> bool:
        return any(fnmatch(tag, pattern) for pattern in self.tags)

    def accepts_architectures(self, architectures: Iterable[str]) -> bool:
        return any(
            arch.endswith(suffix) for arch in architectures for suffix in self.architecture_suffixes
        )


_SEQ2SEQ = ("ForConditionalGeneration", "ForSeq2SeqLM", "MTModel")
# Models that see pictures in a conversation (`image-text-to-text`), for folders whose
# model card names no task: the families transformers runs with their processor's chat
# template. Suffixes, so `…ForConditionalGeneration` of a seq2seq model does not pass.
_VISION_CHAT = (
    "Idefics3ForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
    "LlavaForConditionalGeneration",
    "LlavaOnevisionForConditionalGeneration",
    "Qwen2VLForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration",
    "Gemma3ForConditionalGeneration",
    "PaliGemmaForConditionalGeneration",
)
# diffusers text-to-image pipelines (model_index.json's `_class_name`), for the same case.
_TEXT_TO_IMAGE = (
    "StableDiffusionPipeline",
    "StableDiffusionXLPipeline",
    "StableDiffusion3Pipeline",
    "LatentConsistencyModelPipeline",
    "PixArtAlphaPipeline",
    "PixArtSigmaPipeline",
    "SanaPipeline",
    "FluxPipeline",
    "AmusedPipeline",
)


_O = TypeVar("_O", bound=Output)


@dataclass(frozen=True)
class ResultSpec:
    """What a task's model answers with: how the pool reads the pipeline's output into a
    typed result, and how a reply is written from it.

    Built with `of`, which ties the reader, the type and the formatter together, so a
    row cannot pair a formatter with a result it cannot read.
    """

    kind: type
    read: Callable[[object], Output]
    format: Callable[[Output, str], str]

    @classmethod
    def of(
        cls,
        kind: type[_O],
        read: Callable[[object], _O],
        formatter: Callable[[_O, str], str],
    ) -> ResultSpec:
        def format_result(result: Output, text: str) -> str:
            if not isinstance(result, kind):
                raise TypeError(f"{kind.__name__} expected, got {type(result).__name__}")
            return formatter(result, text)

        return cls(kind, read, format_result)


_RANKING = ResultSpec.of(Ranking, readers.read_ranking, formatters.format_ranking)
_GENERATION = ResultSpec.of(Texts, readers.read_generation, formatters.format_generation)
_CHAT = ResultSpec.of(ChatReply, readers.read_chat, formatters.format_chat)
_SUMMARY = ResultSpec.of(Texts, readers.read_summary, formatters.format_paragraphs)
_TRANSLATION = ResultSpec.of(Texts, readers.read_translation, formatters.format_paragraphs)
_ENTITIES = ResultSpec.of(Entities, readers.read_entities, formatters.format_entities)
_FILL_MASK = ResultSpec.of(Completions, readers.read_fill_mask, formatters.format_fill_mask)
_ZERO_SHOT = ResultSpec.of(Ranking, readers.read_zero_shot, formatters.format_ranking)
_ANSWER = ResultSpec.of(Answer, readers.read_answer, formatters.format_answer)
_CAPTION = ResultSpec.of(Texts, readers.read_caption, formatters.format_caption)
_TRANSCRIPT = ResultSpec.of(Transcript, readers.read_transcript, formatters.format_transcript)
_PICTURE = ResultSpec.of(Picture, readers.read_picture, formatters.format_picture)
_VOICE = ResultSpec.of(VoiceNote, readers.read_voice, formatters.format_voice)


@dataclass(frozen=True)
class TaskSpec:
    """One command: what it runs, on what input, with which default model and parameters."""

    name: str
    pipeline_task: str
    default_model: str
    result: ResultSpec
    model_kind: ModelKind
    input_kind: InputKind = "text"
    input_style: InputStyle = "text"
    params: tuple[str, ...] = ()
    defaults: Mapping[str, Value] = field(default_factory=dict)
    call_params: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    engine: EngineKind = "microbatch"
    # Whether a model of this task may live on a remote inference engine (`<engine>:<model>`).
    remote: bool = False
    # The i18n key shown when the formatter finds nothing to say (no entities, no words heard);
    # None where an empty text is an answer (a voice note needs no caption).
    empty_result: str | None = "result.empty"
    output_kind: OutputKind = "text"
    # Most requests one model call takes, below the pool's own bound: a picture is drawn
    # alone, so each one reports its own steps and stops on its own.
    max_batch_size: int | None = None
    work_check: WorkCheck | None = None
    # Where the bot's default depends on the request (`ModelChooser`); a model the person
    # or their group chose always wins.
    default_model_for: ModelChooser | None = None

    @property
    def streams(self) -> bool:
        """Continuous batching hands out text as it grows; only its tasks can stream."""
        return self.engine == "continuous"

    def default_params(self) -> dict[str, Value]:
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
            _RANKING,
            ModelKind(("text-classification",), ("ForSequenceClassification",)),
            call_params={"top_k": None, "truncation": True},
            aliases=("sentiment-analysis",),
            remote=True,
        ),
        TaskSpec(
            "generate",
            "text-generation",
            "distilbert/distilgpt2",
            _GENERATION,
            ModelKind(("text-generation",), ("ForCausalLM", "LMHeadModel")),
            params=GENERATION_PARAMS,
            engine="continuous",
            remote=True,
        ),
        TaskSpec(
            "chat",
            "chat",
            "HuggingFaceTB/SmolLM2-360M-Instruct",
            _CHAT,
            ModelKind(
                ("text-generation", "image-text-to-text"),
                ("ForCausalLM", "LMHeadModel", *_VISION_CHAT),
                needs_chat_template=True,
            ),
            input_kind="chat",
            params=CHAT_PARAMS,
            defaults={"max_new_tokens": 200, "temperature": 0.7},
            aliases=("conversation",),
            engine="continuous",
            remote=True,
        ),
        TaskSpec(
            "summarize",
            "summarization",
            "facebook/bart-large-cnn",
            _SUMMARY,
            ModelKind(("summarization", "text2text-generation"), _SEQ2SEQ),
            params=SEQ2SEQ_PARAMS,
            defaults={"max_new_tokens": 120},
            remote=True,
        ),
        TaskSpec(
            "translate",
            "translation",
            "Helsinki-NLP/opus-mt-en-zh",
            _TRANSLATION,
            ModelKind(("translation", "translation_*_to_*", "text2text-generation"), _SEQ2SEQ),
            input_style="translate",
            params=SEQ2SEQ_PARAMS,
            defaults={"max_new_tokens": 200},
            remote=True,
        ),
        TaskSpec(
            "ner",
            "token-classification",
            "dslim/bert-base-NER",
            _ENTITIES,
            ModelKind(("token-classification",), ("ForTokenClassification",)),
            call_params={"aggregation_strategy": "simple"},
            empty_result="result.no_entities",
            remote=True,
        ),
        TaskSpec(
            "fill",
            "fill-mask",
            "distilbert/distilroberta-base",
            _FILL_MASK,
            ModelKind(("fill-mask",), ("ForMaskedLM",)),
            input_style="mask",
            aliases=("fill-mask",),
        ),
        TaskSpec(
            "classify",
            "zero-shot-classification",
            "facebook/bart-large-mnli",
            _ZERO_SHOT,
            ModelKind(
                ("zero-shot-classification",),
                ("ForSequenceClassification",),
                required_label="entail",
            ),
            input_style="labels",
            remote=True,
        ),
        TaskSpec(
            "ask",
            "question-answering",
            "distilbert/distilbert-base-cased-distilled-squad",
            _ANSWER,
            ModelKind(("question-answering",), ("ForQuestionAnswering",)),
            input_style="question",
        ),
        TaskSpec(
            "whatis",
            "image-classification",
            "google/vit-base-patch16-224",
            _RANKING,
            ModelKind(("image-classification",), ("ForImageClassification",)),
            input_kind="image",
            call_params={"top_k": 5},
            empty_result="result.nothing_seen",
        ),
        TaskSpec(
            "caption",
            "image-to-text",
            "nlpconnect/vit-gpt2-image-captioning",
            _CAPTION,
            ModelKind(("image-to-text",), ("VisionEncoderDecoderModel",)),
            input_kind="image",
            call_params={"max_new_tokens": 30},
            empty_result="result.nothing_seen",
        ),
        TaskSpec(
            "labels",
            "zero-shot-image-classification",
            "openai/clip-vit-base-patch32",
            _RANKING,
            ModelKind(
                ("zero-shot-image-classification",), ("CLIPModel", "SiglipModel", "Siglip2Model")
            ),
            input_kind="image",
            input_style="labels",
            empty_result="result.nothing_seen",
        ),
        TaskSpec(
            "transcribe",
            "automatic-speech-recognition",
            "openai/whisper-tiny",
            _TRANSCRIPT,
            ModelKind(
                ("automatic-speech-recognition",),
                (
                    "ForCTC",
                    "WhisperForConditionalGeneration",
                    "Speech2TextForConditionalGeneration",
                ),
            ),
            input_kind="audio",
            empty_result="result.nothing_heard",
        ),
        TaskSpec(
            "imagine",
            "text-to-image",
            "IDKiro/sdxs-512-dreamshaper",
            _PICTURE,
            ModelKind(("text-to-image",), _TEXT_TO_IMAGE),
            params=PICTURE_PARAMS,
            aliases=("draw",),
            output_kind="picture",
            max_batch_size=1,
            work_check=check_drawing_work,
        ),
        TaskSpec(
            "say",
            "text-to-speech",
            "facebook/mms-tts-eng",
            _VOICE,
            ModelKind(("text-to-speech", "text-to-audio"), ("VitsModel",)),
            aliases=("speak", "tts"),
            empty_result=None,
            output_kind="voice",
            work_check=check_speech_length,
            default_model_for=voice_for,
        ),
    )
}

# Where a /fill text leaves its gap: people write `<mask>` or `[MASK]` whatever the model's token.
MASK_TOKENS = re.compile(r"<mask>|\[MASK\]", re.IGNORECASE)

# The model a text-only conversation suggests when a picture arrives: a 256M SmolVLM
# (SigLIP and SmolLM2-135M, safetensors) that answers about a photo on a CPU in seconds.
VISION_CHAT_MODEL = "HuggingFaceTB/SmolVLM-256M-Instruct"

# /translate <lang>: <text> picks the English→<lang> model of the Opus-MT family.
TRANSLATION_TARGETS: dict[str, str] = {
    lang: f"Helsinki-NLP/opus-mt-en-{lang}"
    for lang in ("zh", "fr", "de", "es", "ru", "it", "ar", "nl", "sv", "uk", "vi", "hi")
}


@dataclass(frozen=True)
class ModelNote:
    """Why a model the bot offers was chosen, what its weights weigh, where safetensors come from.

    `safetensors` is what public records showed when the note was written:
    `main` (the repo's main branch ships them) or `conversion-pr` (only pickle
    weights on main; vetting uses the Hub's own safetensors conversion pull
    request when there is one). `hfbot models check` asks the Hub itself.
    """

    why: str
    weights_mb: int
    safetensors: Literal["main", "conversion-pr"]

    def line(self) -> str:
        source = "on main" if self.safetensors == "main" else "through the Hub's conversion PR"
        return f"{self.why}; {self.weights_mb:,} MB of weights, safetensors {source}"


_OPUS_MT = ModelNote(
    "Opus-MT (Marian, 6+6 layers): small, fast on CPU, one model per language pair",
    300,
    "conversion-pr",
)

# One note per model the bot offers: every row's default and every /translate target.
MODEL_NOTES: dict[str, ModelNote] = {
    "distilbert/distilbert-base-uncased-finetuned-sst-2-english": ModelNote(
        "the transformers sentiment default; 67M parameters, fast on CPU", 268, "main"
    ),
    "distilbert/distilgpt2": ModelNote(
        "the smallest GPT-2 (82M parameters): generation that answers in a second on CPU",
        353,
        "main",
    ),
    "HuggingFaceTB/SmolLM2-360M-Instruct": ModelNote(
        "an instruct model with a chat template that fits a small server (360M, bf16)",
        724,
        "main",
    ),
    "facebook/bart-large-cnn": ModelNote(
        "the reference news summarizer; replaces sshleifer/distilbart-cnn-12-6, whose main "
        "ships pickle weights only",
        1_630,
        "main",
    ),
    "dslim/bert-base-NER": ModelNote(
        "the most used English NER model (CoNLL-2003: people, places, organisations)", 433, "main"
    ),
    "distilbert/distilroberta-base": ModelNote(
        "a distilled RoBERTa (82M): fill-mask with the <mask> token people know", 331, "main"
    ),
    "facebook/bart-large-mnli": ModelNote(
        "the transformers zero-shot default (an NLI head with an entailment label)", 1_630, "main"
    ),
    "distilbert/distilbert-base-cased-distilled-squad": ModelNote(
        "the transformers question-answering default (SQuAD, 65M parameters)", 261, "main"
    ),
    "google/vit-base-patch16-224": ModelNote(
        "the transformers image-classification default (ImageNet-1k labels)", 346, "main"
    ),
    "nlpconnect/vit-gpt2-image-captioning": ModelNote(
        "the most used vision encoder-decoder captioner (ViT + GPT-2)", 982, "conversion-pr"
    ),
    "openai/clip-vit-base-patch32": ModelNote(
        "the smallest CLIP: zero-shot labels for any words", 605, "conversion-pr"
    ),
    "openai/whisper-tiny": ModelNote(
        "multilingual speech recognition small enough for CPU (39M parameters)", 151, "main"
    ),
    "IDKiro/sdxs-512-dreamshaper": ModelNote(
        "one-step pictures with no guidance (OpenRAIL++); 7x faster here than SD-Turbo",
        1_770,
        "main",
    ),
    "facebook/mms-tts-eng": ModelNote(
        "Meta's MMS English voice (VITS, 36M parameters, no phonemizer needed; CC-BY-NC 4.0)",
        145,
        "main",
    ),
    "BricksDisplay/vits-cmn": ModelNote(
        "a Mandarin VITS voice (Apache-2.0) that reads pinyin, which the bot writes for it",
        145,
        "main",
    ),
    VISION_CHAT_MODEL: ModelNote(
        "the smallest SmolVLM: a chat model that sees photos on a CPU (256M parameters, bf16)",
        513,
        "main",
    ),
    **{f"Helsinki-NLP/opus-mt-en-{lang}": _OPUS_MT for lang in TRANSLATION_TARGETS},
}

# Models whose main has no safetensors, and one that does the same job and ships them:
# a refusal names it. The defaults above need none of their own (see `alternative_for`).
SAFE_ALTERNATIVES: dict[str, str] = {
    "sshleifer/distilbart-cnn-12-6": "facebook/bart-large-cnn",
    "sshleifer/distilbart-cnn-6-6": "facebook/bart-large-cnn",
}

# ModelScope ids of the models above where they differ from the Hub's
# (HFBOT_MODEL_SOURCE=modelscope); any other model is looked up under its Hub id.
MODELSCOPE_IDS: dict[str, str] = {
    "openai/clip-vit-base-patch32": "openai-mirror/clip-vit-base-patch32",
    "openai/whisper-tiny": "openai-mirror/whisper-tiny",
}


def alternative_for(model_id: str, spec: TaskSpec) -> str | None:
    """A model that does this task's job and ships safetensors on main, to name in a refusal."""
    known = SAFE_ALTERNATIVES.get(model_id)
    if known is not None:
        return known
    note = MODEL_NOTES.get(spec.default_model)
    if note is not None and note.safetensors == "main" and spec.default_model != model_id:
        return spec.default_model
    return None


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

    def validate(self, task: str, params: Mapping[str, object]) -> dict[str, Value]:
        """Coerce and range-check parameters for one task; raise on the first bad one."""
        spec = get_task(task)
        clean: dict[str, Value] = {}
        for name, raw in params.items():
            if name not in spec.params:
                raise UnknownParam(param=name, task=spec.name, known=", ".join(spec.params) or "—")
            clean[name] = PARAMS[name].coerce(raw, self.caps.get(name))
        return clean

    def validate_options(self, options: Mapping[str, object]) -> dict[str, Value]:
        """Coerce and check user-wide options (e.g. `stream`)."""
        clean: dict[str, Value] = {}
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
