"""Tiny Hugging Face models built offline: `hfbot console --demo`, and tests that need a real pipeline.

Each builder writes a randomly initialised model (hidden size 32, two layers)
and a tokenizer trained on the few sentences below into `<directory>/<name>`,
and returns that path. A model already built in a directory is reused, so a
session builds each kind once. The weights are random: tests may rely on the
shape of a result (labels, keys, lengths), never on its content.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer, WordPieceTrainer
from transformers import (
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
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    VisionEncoderDecoderConfig,
    VisionEncoderDecoderModel,
    ViTConfig,
    ViTForImageClassification,
    ViTImageProcessorPil,
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

SENTIMENT_LABELS = ("NEGATIVE", "POSITIVE")
NER_LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
NLI_LABELS = ("contradiction", "neutral", "entailment")

_HIDDEN = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
_build_lock = threading.Lock()


def _bert_tokenizer() -> PreTrainedTokenizerFast:
    """WordPiece with BERT's special tokens and `[CLS] a [SEP] b [SEP]` pairs."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(CORPUS, WordPieceTrainer(vocab_size=300, special_tokens=_BERT_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
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
        model_max_length=128,
    )


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
        ),
    )
    return tok


def _gpt2_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE with GPT-2's single special token and, like GPT-2, no pad token."""
    tok = _byte_bpe(["<|endoftext|>"])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        model_max_length=256,
    )


def _bart_tokenizer() -> PreTrainedTokenizerFast:
    """Byte-level BPE wrapping each text in `<s> … </s>`, as BART's tokenizer does."""
    tok = _byte_bpe(_BART_SPECIALS)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
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
        model_max_length=128,
    )


def _bert_config(tokenizer: PreTrainedTokenizerFast, labels: tuple[str, ...] = ()) -> BertConfig:
    extra = (
        {
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
        if labels
        else {}
    )
    return BertConfig(
        vocab_size=len(tokenizer),
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        **_HIDDEN,
        **extra,
    )


def _save(
    directory: str | Path,
    name: str,
    build: Callable[[], tuple[PreTrainedModel, PreTrainedTokenizerFast]],
) -> Path:
    """Build once per directory; the lock keeps parallel fixtures from half-writing a model."""
    path = Path(directory) / name
    with _build_lock:
        if not (path / "config.json").exists():
            torch.manual_seed(0)
            model, tokenizer = build()
            model.eval()
            model.save_pretrained(path, safe_serialization=True)
            tokenizer.save_pretrained(path)
    return path


def tiny_classifier(directory: str | Path) -> Path:
    """A BERT sentiment classifier with labels NEGATIVE / POSITIVE."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bert_tokenizer()
        config = _bert_config(tokenizer, SENTIMENT_LABELS)
        return BertForSequenceClassification(config), tokenizer

    return _save(directory, "classifier", build)


def tiny_zero_shot(directory: str | Path) -> Path:
    """A BERT NLI classifier (contradiction / neutral / entailment) for zero-shot classification."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bert_tokenizer()
        config = _bert_config(tokenizer, NLI_LABELS)
        return BertForSequenceClassification(config), tokenizer

    return _save(directory, "zero_shot", build)


def tiny_ner(directory: str | Path) -> Path:
    """A BERT token classifier with labels O / B-PER / I-PER / B-LOC / I-LOC."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bert_tokenizer()
        config = _bert_config(tokenizer, NER_LABELS)
        return BertForTokenClassification(config), tokenizer

    return _save(directory, "ner", build)


def tiny_fill_mask(directory: str | Path) -> Path:
    """A BERT masked language model; its mask token is `[MASK]`."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bert_tokenizer()
        return BertForMaskedLM(_bert_config(tokenizer)), tokenizer

    return _save(directory, "fill_mask", build)


def tiny_qa(directory: str | Path) -> Path:
    """A BERT extractive question-answering model (start/end logits per token)."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bert_tokenizer()
        return BertForQuestionAnswering(_bert_config(tokenizer)), tokenizer

    return _save(directory, "qa", build)


def tiny_gpt2(directory: str | Path) -> Path:
    """A GPT-2 causal language model whose tokenizer, like GPT-2's, has no pad token."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _gpt2_tokenizer()
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=256,
            n_embd=32,
            n_layer=2,
            n_head=2,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        return GPT2LMHeadModel(config), tokenizer

    return _save(directory, "gpt2", build)


def tiny_seq2seq(directory: str | Path) -> Path:
    """A BART encoder-decoder for summarization and translation runners."""

    def build() -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
        tokenizer = _bart_tokenizer()
        config = BartConfig(
            vocab_size=len(tokenizer),
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.eos_token_id,
            forced_bos_token_id=None,
        )
        return BartForConditionalGeneration(config), tokenizer

    return _save(directory, "seq2seq", build)


# Photos and voice notes ----------------------------------------------------------------

IMAGE_LABELS = ("cat", "dog", "car")
_IMAGE_SIZE = 32
_VIT = {
    "image_size": _IMAGE_SIZE,
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def _save_parts(directory: str | Path, name: str, build: Callable[[], list[Any]]) -> Path:
    """Like `_save`, for models whose processors are several parts (image processor, tokenizer…)."""
    path = Path(directory) / name
    with _build_lock:
        if not (path / "config.json").exists():
            torch.manual_seed(0)
            model, *parts = build()
            model.eval()
            model.save_pretrained(path, safe_serialization=True)
            for part in parts:
                part.save_pretrained(path)
    return path


def _vit_processor() -> ViTImageProcessorPil:
    """Pillow-backed, so it runs where torchvision does not import."""
    return ViTImageProcessorPil(size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE})


def tiny_image_classifier(directory: str | Path) -> Path:
    """A ViT image classifier with labels cat / dog / car, for /whatis."""

    def build() -> list[Any]:
        config = ViTConfig(
            **_VIT,
            id2label=dict(enumerate(IMAGE_LABELS)),
            label2id={label: i for i, label in enumerate(IMAGE_LABELS)},
        )
        return [ViTForImageClassification(config), _vit_processor()]

    return _save_parts(directory, "image_classifier", build)


def tiny_clip(directory: str | Path) -> Path:
    """A CLIP model (ViT image tower, byte-level BPE text tower) for /labels."""

    def build() -> list[Any]:
        tok = _byte_bpe(["<|startoftext|>", "<|endoftext|>"])
        start, end = tok.token_to_id("<|startoftext|>"), tok.token_to_id("<|endoftext|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|startoftext|> $A <|endoftext|>",
            special_tokens=[("<|startoftext|>", start), ("<|endoftext|>", end)],
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token="<|startoftext|>",
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            unk_token="<|endoftext|>",
            model_max_length=77,
        )
        text = {
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": start,
            "eos_token_id": end,
            "pad_token_id": end,
        }
        config = CLIPConfig(text_config=text, vision_config=dict(_VIT), projection_dim=16)
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": _IMAGE_SIZE},
            crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE},
        )
        return [CLIPModel(config), tokenizer, processor]

    return _save_parts(directory, "clip", build)


def tiny_captioner(directory: str | Path) -> Path:
    """A ViT encoder with a GPT-2 decoder (vision encoder-decoder), for /caption."""

    def build() -> list[Any]:
        tokenizer = _gpt2_tokenizer()
        tokenizer.pad_token = tokenizer.eos_token
        decoder = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=2,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            add_cross_attention=True,
            is_decoder=True,
        )
        config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(ViTConfig(**_VIT), decoder)
        config.decoder_start_token_id = tokenizer.bos_token_id
        config.pad_token_id = config.eos_token_id = tokenizer.eos_token_id
        model = VisionEncoderDecoderModel(config)
        generation = model.generation_config
        generation.decoder_start_token_id = tokenizer.bos_token_id
        generation.pad_token_id = generation.eos_token_id = tokenizer.eos_token_id
        return [model, tokenizer, _vit_processor()]

    return _save_parts(directory, "captioner", build)


def tiny_speech_recognizer(directory: str | Path) -> Path:
    """A wav2vec2 CTC model over letters, 16 kHz, for /transcribe."""

    def build() -> list[Any]:
        letters = "abcdefghijklmnopqrstuvwxyz'"
        vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: i + 3 for i, c in enumerate(letters)}}
        with tempfile.TemporaryDirectory() as scratch:
            vocab_file = Path(scratch) / "vocab.json"
            vocab_file.write_text(json.dumps(vocab))
            tokenizer = Wav2Vec2CTCTokenizer(
                str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
            )
        extractor = Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16_000, padding_value=0.0, return_attention_mask=True
        )
        config = Wav2Vec2Config(
            vocab_size=len(vocab),
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
            pad_token_id=0,
        )
        return [Wav2Vec2ForCTC(config), tokenizer, extractor]

    return _save_parts(directory, "speech_recognizer", build)


DEMO_BUILDERS: dict[str, Callable[[str | Path], Path]] = {
    "sentiment": tiny_classifier,
    "generate": tiny_gpt2,
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
}


def build_demo_models(directory: str | Path) -> dict[str, str]:
    """A tiny model for every task (built once into `directory`), keyed by task name."""
    return {task: str(build(directory)) for task, build in DEMO_BUILDERS.items()}
