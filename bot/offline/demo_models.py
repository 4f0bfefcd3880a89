"""Hugging Face models with random weights, built offline, at two scales from one set of builders.

`TINY` (the default; hidden size 32, two layers, tokenizers trained on the few
sentences below) is for `hfbot console --demo` and for tests that need a real
pipeline: a model builds in a fraction of a second. `BASE` is the real size of
the bot's default models (a 6-layer BERT, distilgpt2, ViT-base, SDXS-512's UNet,
MMS-TTS's VITS, SmolVLM-256M, …) with
whole-word tokenizers filled to the real vocabulary size, for benchmarks: a
forward pass costs the same whether or not the weights are trained, so only the
sizes must be real. The `tiny_` names are those of the default scale.

Each builder writes a model and its tokenizer or processors into
`<directory>/<name><scale suffix>` and returns that path. A model already built
in a directory is reused, so a session builds each kind once. The weights are
random: tests may rely on the shape of a result (labels, keys, lengths), never
on its content.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer, WordPieceTrainer
from transformers import (
    AddedToken,
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPVisionConfig,
    GPT2Config,
    GPT2LMHeadModel,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
    VitsConfig,
    VitsModel,
    VitsTokenizer,
    Wav2Vec2Config,
    Wav2Vec2CTCTokenizer,
    Wav2Vec2FeatureExtractor,
    Wav2Vec2ForCTC,
)

CORPUS = [
    "This book is awesome and I love it.",
    "The film was terrible, I hated every minute.",
    "Paris is the capital of France.",
    "Alice lives in London with her cat.",
    "Bob travelled from Berlin to Rome by train.",
    "The weather today is sunny and warm.",
    "I am not sure whether this is good or bad.",
    "Transformers make natural language processing easy.",
    "The quick brown fox jumps over the lazy dog.",
    "Where does Alice live? She lives in London.",
    "What is the capital of France? It is Paris.",
    "Summaries are shorter than the text they summarise.",
    "Translate this sentence into another language, please.",
    "Once upon a time there was a small robot.",
    "The robot wanted to learn how to read books.",
    "Every morning the robot read a new story.",
    "Happy users send many messages to the bot.",
    "Sad users send angry messages to the bot.",
    "This is about sports, politics or technology.",
    "The team won the match in the last minute.",
    "The government announced a new law today.",
    "A new phone was released with a faster chip.",
    "Numbers like 1 2 3 4 5 6 7 8 9 0 appear too.",
    "Questions, answers, contexts and spans!",
]
# The corpus' words, lowercased and without punctuation: the first entries of a
# real-size vocabulary, so texts made of them (as benchmarks make) tokenize to real words.
WORDS = tuple(sorted({w.strip(".,?!").lower() for s in CORPUS for w in s.split()} - {""}))

SENTIMENT_LABELS = ("NEGATIVE", "POSITIVE")
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NLI_LABELS = ("contradiction", "neutral", "entailment")
IMAGE_LABELS = ("cat", "dog", "car")


# Each size is keyword arguments of one config class, typed so that mypy checks
# every `Config(**size)` against that class's own signature.
class BertSize(TypedDict):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int


class Gpt2Size(TypedDict):
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int


class BartSize(TypedDict):
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_position_embeddings: int


class VitSize(TypedDict):
    image_size: int
    patch_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int


class ClipTextSize(TypedDict):
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int


class LlamaSize(TypedDict):
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int


class Wav2Vec2Size(TypedDict):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    num_conv_pos_embeddings: int
    num_conv_pos_embedding_groups: int
    feat_extract_norm: str
    do_stable_layer_norm: bool


class UNetSize(TypedDict):
    sample_size: int
    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int
    attention_head_dim: int
    norm_num_groups: int


class TinyAutoencoderSize(TypedDict):
    encoder_block_out_channels: tuple[int, ...]
    decoder_block_out_channels: tuple[int, ...]
    num_encoder_blocks: tuple[int, ...]
    num_decoder_blocks: tuple[int, ...]


class VitsSize(TypedDict):
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    ffn_dim: int
    flow_size: int
    spectrogram_bins: int
    upsample_initial_channel: int
    upsample_rates: list[int]
    upsample_kernel_sizes: list[int]
    resblock_kernel_sizes: list[int]
    resblock_dilation_sizes: list[list[int]]
    prior_encoder_num_flows: int
    prior_encoder_num_wavenet_layers: int
    posterior_encoder_num_wavenet_layers: int
    duration_predictor_num_flows: int
    duration_predictor_filter_channels: int
    depth_separable_num_layers: int


class Vocabularies(TypedDict):
    bert: int
    gpt2: int
    bart: int
    clip: int
    llama: int


@dataclass(frozen=True)
class Scale:
    """Every size a builder needs, per architecture, so one builder serves tests and benchmarks.

    `vocabularies` is None where tokenizers are trained on `CORPUS` (a few hundred
    entries); otherwise each text tokenizer is whole words filled to that many
    entries, since a vocabulary's size, not its content, sets what the embedding
    and output layers cost. `suffix` keeps the scales apart in one directory.
    """

    suffix: str
    bert: BertSize
    gpt2: Gpt2Size
    caption_decoder: Gpt2Size
    bart: BartSize
    vit: VitSize
    clip_vision: VitSize
    clip_text: ClipTextSize
    clip_projection_dim: int
    wav2vec2: Wav2Vec2Size
    llama: LlamaSize
    image_labels: tuple[str, ...]
    # /imagine: a latent diffusion UNet, its CLIP text encoder and a tiny autoencoder (TAESD).
    unet: UNetSize
    picture_text: ClipTextSize
    picture_autoencoder: TinyAutoencoderSize
    # /say: a VITS voice.
    vits: VitsSize
    # Conversations about pictures: an Idefics3 model (SigLIP tower, Llama text model).
    vision_tower: VitSize
    vision_text: LlamaSize
    vision_scale_factor: int
    vision_longest_edge: int
    vocabularies: Vocabularies | None = None


_TINY_VIT = VitSize(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
)
TINY = Scale(
    suffix="",
    bert=BertSize(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    ),
    gpt2=Gpt2Size(n_positions=256, n_embd=32, n_layer=2, n_head=2),
    caption_decoder=Gpt2Size(n_positions=64, n_embd=32, n_layer=2, n_head=2),
    bart=BartSize(
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
    ),
    vit=_TINY_VIT,
    clip_vision=_TINY_VIT,
    clip_text=ClipTextSize(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
    ),
    clip_projection_dim=16,
    wav2vec2=Wav2Vec2Size(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32, 32),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        feat_extract_norm="layer",
        do_stable_layer_norm=True,
    ),
    llama=LlamaSize(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
    ),
    image_labels=IMAGE_LABELS,
    unet=UNetSize(
        sample_size=8,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        attention_head_dim=8,
        norm_num_groups=8,
    ),
    picture_text=ClipTextSize(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
    ),
    picture_autoencoder=TinyAutoencoderSize(
        encoder_block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        num_encoder_blocks=(1, 1, 1, 1),
        num_decoder_blocks=(1, 1, 1, 1),
    ),
    vits=VitsSize(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=32,
        flow_size=16,
        spectrogram_bins=17,
        upsample_initial_channel=32,
        upsample_rates=[8, 8, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=2,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        duration_predictor_num_flows=2,
        duration_predictor_filter_channels=16,
        depth_separable_num_layers=2,
    ),
    vision_tower=VitSize(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    vision_text=LlamaSize(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
    ),
    vision_scale_factor=2,
    vision_longest_edge=64,
)
# The sizes of the registry's defaults where the architecture is the same: distilbert
# (as a 6-layer BERT), distilgpt2, bart-large-cnn, vit-base-patch16-224, the
# GPT-2 of vit-gpt2-image-captioning, clip-vit-base-patch32, wav2vec2-base,
# SmolLM2-360M-Instruct (the chat default, a Llama), the UNet, CLIP ViT-L/14 text encoder
# and TAESD of IDKiro/sdxs-512-dreamshaper (the /imagine default), facebook/mms-tts-eng's
# VITS (the /say default: VitsConfig's own defaults), and SmolVLM-256M-Instruct (SigLIP
# base at 512 px, SmolLM2-135M, 64 tokens per 512-px tile, photos up to 2048 px).
BASE = Scale(
    suffix="-base",
    bert=BertSize(
        hidden_size=768,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
    ),
    gpt2=Gpt2Size(n_positions=1024, n_embd=768, n_layer=6, n_head=12),
    caption_decoder=Gpt2Size(n_positions=1024, n_embd=768, n_layer=12, n_head=12),
    bart=BartSize(
        d_model=1024,
        encoder_layers=12,
        decoder_layers=12,
        encoder_attention_heads=16,
        decoder_attention_heads=16,
        encoder_ffn_dim=4096,
        decoder_ffn_dim=4096,
        max_position_embeddings=1024,
    ),
    vit=VitSize(
        image_size=224,
        patch_size=16,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
    ),
    clip_vision=VitSize(
        image_size=224,
        patch_size=32,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
    ),
    clip_text=ClipTextSize(
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=8,
        max_position_embeddings=77,
    ),
    clip_projection_dim=512,
    wav2vec2=Wav2Vec2Size(
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        conv_dim=(512,) * 7,
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    ),
    llama=LlamaSize(
        hidden_size=960,
        intermediate_size=2560,
        num_hidden_layers=32,
        num_attention_heads=15,
        num_key_value_heads=5,
        max_position_embeddings=8192,
    ),
    image_labels=tuple(f"label_{i}" for i in range(1000)),
    unet=UNetSize(
        sample_size=64,
        block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        attention_head_dim=8,
        norm_num_groups=32,
    ),
    picture_text=ClipTextSize(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        max_position_embeddings=77,
    ),
    picture_autoencoder=TinyAutoencoderSize(
        encoder_block_out_channels=(64, 64, 64, 64),
        decoder_block_out_channels=(64, 64, 64, 64),
        num_encoder_blocks=(1, 3, 3, 3),
        num_decoder_blocks=(3, 3, 3, 1),
    ),
    vits=VitsSize(
        hidden_size=192,
        num_hidden_layers=6,
        num_attention_heads=2,
        ffn_dim=768,
        flow_size=192,
        spectrogram_bins=513,
        upsample_initial_channel=512,
        upsample_rates=[8, 8, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4],
        resblock_kernel_sizes=[3, 7, 11],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        prior_encoder_num_flows=4,
        prior_encoder_num_wavenet_layers=4,
        posterior_encoder_num_wavenet_layers=16,
        duration_predictor_num_flows=4,
        duration_predictor_filter_channels=256,
        depth_separable_num_layers=3,
    ),
    vision_tower=VitSize(
        image_size=512,
        patch_size=16,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
    ),
    vision_text=LlamaSize(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
    ),
    vision_scale_factor=4,
    vision_longest_edge=2048,
    vocabularies=Vocabularies(bert=30522, gpt2=50257, bart=50265, clip=49408, llama=49152),
)

_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
_GPT2_END, _GPT2_PAD = "<|endoftext|>", "<pad>"
_CHAT_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as SmolLM2-Instruct (the chat default) writes conversations.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_CLIP_START, _CLIP_END = "<|startoftext|>", "<|endoftext|>"
_build_lock = threading.Lock()


def _wordpiece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(
        CORPUS, WordPieceTrainer(vocab_size=300, special_tokens=_BERT_SPECIALS, show_progress=False)
    )
    return tok


def _byte_bpe(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        CORPUS,
        BpeTrainer(
            vocab_size=400,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    return tok


def _word_level(specials: list[str], size: int, unk: str) -> Tokenizer:
    """Whole words over a real-size vocabulary: specials, the corpus' words, then numbered fillers.

    Every id decodes to a word, so a generated text grows at every step, as it
    would with a trained tokenizer (what a streaming benchmark needs).
    """
    names = [*specials, *WORDS]
    vocab = {name: i for i, name in enumerate(names)}
    vocab |= {f"w{i}": i for i in range(len(names), size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def _special_id(tok: Tokenizer, token: str) -> int:
    """The id of a special token; its vocabulary was built with it, so a miss is a bug here."""
    found = tok.token_to_id(token)
    if found is None:
        raise KeyError(token)
    return found


def _bert_tokenizer(scale: Scale) -> PreTrainedTokenizerFast:
    """BERT's special tokens and `[CLS] a [SEP] b [SEP]` pairs."""
    vocabularies = scale.vocabularies
    tok = (
        _wordpiece()
        if vocabularies is None
        else _word_level(_BERT_SPECIALS, vocabularies["bert"], unk="[UNK]")
    )
    cls, sep = _special_id(tok, "[CLS]"), _special_id(tok, "[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=scale.bert["max_position_embeddings"],
    )


def _gpt2_tokenizer(scale: Scale, end_of_sequence: bool = True) -> PreTrainedTokenizerFast:
    """GPT-2's single special token and, like GPT-2, no pad token, unless the model never ends.

    A model without an end-of-sequence token has nothing to pad batched prompts
    with, so it gets a pad token of its own (not the unknown token: a prompt's
    unknown words must not read as padding), on the left, where a decoder needs it.
    """
    specials = [_GPT2_END] if end_of_sequence else [_GPT2_END, _GPT2_PAD]
    vocabularies = scale.vocabularies
    tok = (
        _byte_bpe(specials)
        if vocabularies is None
        else _word_level(specials, vocabularies["gpt2"], unk=_GPT2_END)
    )
    positions = scale.gpt2["n_positions"]
    if end_of_sequence:
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=_GPT2_END,
            eos_token=_GPT2_END,
            unk_token=_GPT2_END,
            model_max_length=positions,
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token=_GPT2_END,
        pad_token=_GPT2_PAD,
        padding_side="left",
        model_max_length=positions,
    )


def _bart_tokenizer(scale: Scale) -> PreTrainedTokenizerFast:
    """Wraps each text in `<s> … </s>`, as BART's tokenizer does."""
    vocabularies = scale.vocabularies
    tok = (
        _byte_bpe(_BART_SPECIALS)
        if vocabularies is None
        else _word_level(_BART_SPECIALS, vocabularies["bart"], unk="<unk>")
    )
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", _special_id(tok, "</s>")), ("<s>", _special_id(tok, "<s>"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        mask_token="<mask>",
        cls_token="<s>",
        sep_token="</s>",
        model_max_length=scale.bart["max_position_embeddings"],
    )


def _clip_tokenizer(scale: Scale) -> PreTrainedTokenizerFast:
    """Wraps each text in CLIP's start and end tokens; the end token also pads."""
    vocabularies = scale.vocabularies
    specials = [_CLIP_START, _CLIP_END]
    tok = (
        _byte_bpe(specials)
        if vocabularies is None
        else _word_level(specials, vocabularies["clip"], unk=_CLIP_END)
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{_CLIP_START} $A {_CLIP_END}",
        special_tokens=[
            (_CLIP_START, _special_id(tok, _CLIP_START)),
            (_CLIP_END, _special_id(tok, _CLIP_END)),
        ],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=_CLIP_START,
        eos_token=_CLIP_END,
        pad_token=_CLIP_END,
        unk_token=_CLIP_END,
        model_max_length=scale.clip_text["max_position_embeddings"],
    )


def _bert_config(
    tokenizer: PreTrainedTokenizerFast, scale: Scale, labels: tuple[str, ...] = ()
) -> BertConfig:
    return BertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        id2label=dict(enumerate(labels)) if labels else None,
        label2id={label: i for i, label in enumerate(labels)} if labels else None,
        **scale.bert,
    )


def _save(
    directory: str | Path,
    name: str,
    scale: Scale,
    build: Callable[[], tuple[PreTrainedModel, Sequence[Any]]],
) -> Path:
    """Build once per directory; the lock keeps parallel fixtures from half-writing a model.

    `build` returns the model and what goes with it (tokenizer, image processor,
    feature extractor), each saved next to it.
    """
    path = Path(directory) / f"{name}{scale.suffix}"
    with _build_lock:
        if not (path / "config.json").exists():
            torch.manual_seed(0)
            model, parts = build()
            model.eval()
            model.save_pretrained(path, safe_serialization=True)
            for part in parts:
                part.save_pretrained(path)
    return path


def tiny_classifier(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BERT sentiment classifier with labels NEGATIVE / POSITIVE."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bert_tokenizer(scale)
        config = _bert_config(tokenizer, scale, SENTIMENT_LABELS)
        return BertForSequenceClassification(config), [tokenizer]

    return _save(directory, "classifier", scale, build)


def tiny_zero_shot(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BERT NLI classifier (contradiction / neutral / entailment) for zero-shot classification."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bert_tokenizer(scale)
        config = _bert_config(tokenizer, scale, NLI_LABELS)
        return BertForSequenceClassification(config), [tokenizer]

    return _save(directory, "zero_shot", scale, build)


def tiny_ner(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BERT token classifier with labels O / B-PER / I-PER / B-LOC / I-LOC."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bert_tokenizer(scale)
        config = _bert_config(tokenizer, scale, NER_LABELS)
        return BertForTokenClassification(config), [tokenizer]

    return _save(directory, "ner", scale, build)


def tiny_fill_mask(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BERT masked language model; its mask token is `[MASK]`."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bert_tokenizer(scale)
        return BertForMaskedLM(_bert_config(tokenizer, scale)), [tokenizer]

    return _save(directory, "fill_mask", scale, build)


def tiny_qa(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BERT extractive question-answering model (start/end logits per token)."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bert_tokenizer(scale)
        return BertForQuestionAnswering(_bert_config(tokenizer, scale)), [tokenizer]

    return _save(directory, "qa", scale, build)


def tiny_gpt2(directory: str | Path, scale: Scale = TINY, *, end_of_sequence: bool = True) -> Path:
    """A GPT-2 causal language model whose tokenizer, like GPT-2's, has no pad token.

    With `end_of_sequence=False` the model has no end-of-sequence token, so every
    request generates exactly its `max_new_tokens` (a benchmark then compares
    like with like); its tokenizer pads on the left instead.
    """

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _gpt2_tokenizer(scale, end_of_sequence)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **scale.gpt2,
        )
        return GPT2LMHeadModel(config), [tokenizer]

    return _save(directory, "gpt2" if end_of_sequence else "gpt2_no_eos", scale, build)


def _chat_tokenizer(scale: Scale) -> PreTrainedTokenizerFast:
    """ChatML's special tokens and chat template; a turn ends with `<|im_end|>`."""
    vocabularies = scale.vocabularies
    tok = (
        _byte_bpe(_CHAT_SPECIALS)
        if vocabularies is None
        else _word_level(_CHAT_SPECIALS, vocabularies["llama"], unk=_CHAT_SPECIALS[0])
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=scale.llama["max_position_embeddings"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def tiny_chat(directory: str | Path, scale: Scale = TINY) -> Path:
    """A Llama instruct model with a chat template, for conversations (its replies are random)."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _chat_tokenizer(scale)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            **scale.llama,
        )
        return LlamaForCausalLM(config), [tokenizer]

    return _save(directory, "chat", scale, build)


def tiny_seq2seq(directory: str | Path, scale: Scale = TINY) -> Path:
    """A BART encoder-decoder for summarization and translation runners."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _bart_tokenizer(scale)
        config = BartConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            **scale.bart,
        )
        return BartForConditionalGeneration(config), [tokenizer]

    return _save(directory, "seq2seq", scale, build)


# Photos and voice notes ----------------------------------------------------------------


def _vit_processor(scale: Scale) -> ViTImageProcessorPil:
    """Pillow-backed, so it runs where torchvision does not import."""
    side = scale.vit["image_size"]
    return ViTImageProcessorPil(size={"height": side, "width": side})


def tiny_image_classifier(directory: str | Path, scale: Scale = TINY) -> Path:
    """A ViT image classifier, for /whatis; tiny: labels cat / dog / car."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        labels = scale.image_labels
        config = ViTConfig(
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            **scale.vit,
        )
        return ViTForImageClassification(config), [_vit_processor(scale)]

    return _save(directory, "image_classifier", scale, build)


def tiny_clip(directory: str | Path, scale: Scale = TINY) -> Path:
    """A CLIP model (ViT image tower, text tower with CLIP's special tokens) for /labels."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _clip_tokenizer(scale)
        text = CLIPTextConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **scale.clip_text,
        )
        config = CLIPConfig(
            text_config=text,
            vision_config=CLIPVisionConfig(**scale.clip_vision),
            projection_dim=scale.clip_projection_dim,
        )
        side = scale.clip_vision["image_size"]
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
        return CLIPModel(config), [tokenizer, processor]

    return _save(directory, "clip", scale, build)


def tiny_captioner(directory: str | Path, scale: Scale = TINY) -> Path:
    """A ViT encoder with a GPT-2 decoder (vision encoder-decoder), for /caption.

    `from_encoder_decoder_configs` turns the GPT-2 into a decoder that attends to
    the image, so its config needs no flags for that.
    """

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        tokenizer = _gpt2_tokenizer(scale)
        tokenizer.pad_token = tokenizer.eos_token
        decoder = GPT2Config(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **scale.caption_decoder,
        )
        config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(
            ViTConfig(**scale.vit), decoder
        )
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = config.eos_token_id = tokenizer.eos_token_id
        model = VisionEncoderDecoderModel(config)
        generation = model.generation_config
        generation.decoder_start_token_id = tokenizer.bos_token_id
        generation.pad_token_id = generation.eos_token_id = tokenizer.eos_token_id
        return model, [tokenizer, _vit_processor(scale)]

    return _save(directory, "captioner", scale, build)


def tiny_speech_recognizer(directory: str | Path, scale: Scale = TINY) -> Path:
    """A wav2vec2 CTC model over letters, 16 kHz, for /transcribe.

    The feature extractor returns an attention mask only where the model's
    feature encoder uses layer norm: a group-normed one (wav2vec2-base) is meant to
    see zero-padded audio without a mask, as the released checkpoints are set up.
    """

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        letters = "abcdefghijklmnopqrstuvwxyz'"
        vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(letters)}}
        with tempfile.TemporaryDirectory() as scratch:
            vocab_file = Path(scratch) / "vocab.json"
            vocab_file.write_text(json.dumps(vocab))
            tokenizer = Wav2Vec2CTCTokenizer(
                str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
            )
        config = Wav2Vec2Config(vocab_size=len(vocab), pad_token_id=0, **scale.wav2vec2)
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1,
            sampling_rate=16_000,
            padding_value=0.0,
            return_attention_mask=config.feat_extract_norm == "layer",
        )
        return Wav2Vec2ForCTC(config), [tokenizer, extractor]

    return _save(directory, "speech_recognizer", scale, build)


# Pictures and voices out, pictures in conversation ------------------------------------


def picture_models(scale: Scale = TINY) -> dict[str, Any]:
    """The parts of a Stable Diffusion pipeline shaped like SDXS-512 that hold weights (a
    UNet without a mid block, a CLIP text encoder, the tiny autoencoder TAESD) and its
    tokenizer, by the names diffusers gives them."""
    from diffusers import AutoencoderTiny, UNet2DConditionModel

    tokenizer = _clip_tokenizer(scale)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **scale.picture_text,
        )
    )
    unet = UNet2DConditionModel(
        in_channels=4,
        out_channels=4,
        mid_block_type=None,
        cross_attention_dim=scale.picture_text["hidden_size"],
        **scale.unet,
    )
    vae = AutoencoderTiny(**scale.picture_autoencoder)
    return {
        "unet": unet.eval(),
        "text_encoder": text.eval(),
        "vae": vae.eval(),
        "tokenizer": tokenizer,
    }


def picture_pipeline(scale: Scale = TINY) -> Any:
    """`picture_models` with a one-step ("trailing") Euler scheduler, as SDXS ships it."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        **picture_models(scale),
        scheduler=EulerDiscreteScheduler(
            beta_schedule="scaled_linear",
            beta_start=0.00085,
            beta_end=0.012,
            timestep_spacing="trailing",
            steps_offset=1,
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_picture_maker(directory: str | Path, scale: Scale = TINY) -> Path:
    """`picture_pipeline` saved as diffusers saves one (model_index.json and a folder per
    component), for /imagine."""
    path = Path(directory) / f"picture_maker{scale.suffix}"
    with _build_lock:
        if not (path / "model_index.json").exists():
            torch.manual_seed(0)
            picture_pipeline(scale).save_pretrained(path, safe_serialization=True)
    return path


# MMS-TTS's English voice reads lower-case letters, apostrophes, hyphens and spaces.
VOICE_LETTERS = "abcdefghijklmnopqrstuvwxyz'- "
# A Mandarin voice reads pinyin with its tone marks.
PINYIN_LETTERS = "abcdefghijklmnopqrstuvwxyzüāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ,.!? "


def tiny_voice(directory: str | Path, scale: Scale = TINY, *, pinyin: bool = False) -> Path:
    """A VITS voice over letters, 16 kHz, for /say: English letters like MMS-TTS's voice, or
    pinyin with tone marks like the Mandarin one (`pinyin=True`, two speakers)."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        letters = PINYIN_LETTERS if pinyin else VOICE_LETTERS
        vocab = {symbol: index for index, symbol in enumerate(["_", *letters])}
        with tempfile.TemporaryDirectory() as scratch:
            vocab_file = Path(scratch) / "vocab.json"
            vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
            tokenizer = VitsTokenizer(
                str(vocab_file), pad_token="_", unk_token="<unk>", phonemize=False
            )
        config = VitsConfig(
            vocab_size=len(vocab),
            num_speakers=2 if pinyin else 1,
            speaker_embedding_size=16 if pinyin else 0,
            sampling_rate=16_000,
            **scale.vits,
        )
        return VitsModel(config), [tokenizer]

    return _save(directory, "voice_pinyin" if pinyin else "voice", scale, build)


# SmolVLM's template: "User:<image>…<end_of_utterance>\nAssistant:", content as typed parts.
VISION_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
_VISION_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>"]


def tiny_vision_chat(directory: str | Path, scale: Scale = TINY) -> Path:
    """An Idefics3 model (SmolVLM's architecture) with its processor and chat template, for
    conversations about photos: pictures split into tiles, each a few image tokens."""

    def build() -> tuple[PreTrainedModel, Sequence[Any]]:
        vocabularies = scale.vocabularies
        tok = (
            _byte_bpe(_VISION_SPECIALS)
            if vocabularies is None
            else _word_level(_VISION_SPECIALS, vocabularies["llama"], unk=_VISION_SPECIALS[0])
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|im_start|>",
            eos_token="<end_of_utterance>",
            pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            model_max_length=scale.vision_text["max_position_embeddings"],
        )
        tower = scale.vision_tower
        tile = tower["image_size"]
        image_processor = Idefics3ImageProcessorPil(
            size={"longest_edge": scale.vision_longest_edge},
            max_image_size={"longest_edge": tile},
            do_image_splitting=True,
        )
        per_tile = (tile // tower["patch_size"]) ** 2 // scale.vision_scale_factor**2
        processor = Idefics3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            image_seq_len=per_tile,
            chat_template=VISION_CHAT_TEMPLATE,
        )
        image_token = tokenizer.convert_tokens_to_ids(AddedToken("<image>").content)
        config = Idefics3Config(
            vision_config=dict(tower),
            text_config={
                "model_type": "llama",
                "vocab_size": len(tokenizer),
                "bos_token_id": tokenizer.bos_token_id,
                "eos_token_id": tokenizer.eos_token_id,
                "pad_token_id": tokenizer.pad_token_id,
                "tie_word_embeddings": True,
                **scale.vision_text,
            },
            scale_factor=scale.vision_scale_factor,
            image_token_id=image_token,
            pad_token_id=tokenizer.pad_token_id,
        )
        model = Idefics3ForConditionalGeneration(config)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        return model, [processor]

    return _save(directory, "vision_chat", scale, build)


DEMO_BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "sentiment": tiny_classifier,
    "generate": tiny_gpt2,
    "chat": tiny_chat,
    "summarize": tiny_seq2seq,
    "translate": tiny_seq2seq,
    "ner": tiny_ner,
    "fill": tiny_fill_mask,
    "classify": tiny_zero_shot,
    "ask": tiny_qa,
    "whatis": tiny_image_classifier,
    "caption": tiny_captioner,
    "labels": tiny_clip,
    "transcribe": tiny_speech_recognizer,
    "imagine": tiny_picture_maker,
    "say": tiny_voice,
}
# Defaults that are not a task's own: the Chinese voice of /say (see bot/tasks/voices.py).
DEMO_EXTRAS: dict[str, Callable[[str | Path], Path]] = {
    "say.zh": lambda directory: tiny_voice(directory, pinyin=True),
}


def build_demo_models(directory: str | Path) -> dict[str, str]:
    """A tiny model for every task (built once into `directory`), keyed as `default_models`
    takes them: by task name, and `say.zh` for the Chinese voice."""
    builders = {**DEMO_BUILDERS, **DEMO_EXTRAS}
    return {key: str(build(directory)) for key, build in builders.items()}
