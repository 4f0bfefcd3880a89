"""The demo-model builders: benchmarks rely on the BASE scale being the real size.

Benchmark figures are only comparable with trained models if the random-weight
stand-ins have the real architecture and vocabulary size, so these tests pin that,
and that a GPT-2 built without an end-of-sequence token can still batch prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, GenerationConfig

from bot.offline.demo_models import (
    BASE,
    TINY,
    WORDS,
    picture_models,
    tiny_classifier,
    tiny_gpt2,
)


def test_a_base_classifier_is_a_real_size_bert_next_to_the_tiny_one(tmp_path: Path) -> None:
    base = tiny_classifier(tmp_path, BASE)
    assert base != tiny_classifier(tmp_path)
    config = json.loads((base / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert (config["hidden_size"], config["num_hidden_layers"]) == (768, 6)
    assert config["num_attention_heads"] == 12
    assert config["id2label"] == {"0": "NEGATIVE", "1": "POSITIVE"}
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert len(tokenizer) == config["vocab_size"] == 30522
    ids = tokenizer(" ".join(WORDS))["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert len(ids) == len(WORDS) + 2


def test_a_gpt2_without_end_of_sequence_never_stops_and_pads_on_the_left(tmp_path: Path) -> None:
    path = tiny_gpt2(tmp_path, TINY, end_of_sequence=False)
    assert path != tiny_gpt2(tmp_path)
    config = json.loads((path / "config.json").read_text())
    assert config["eos_token_id"] is None
    assert GenerationConfig.from_pretrained(path).eos_token_id is None
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token is None
    assert tokenizer.pad_token_id is not None
    assert tokenizer.pad_token_id == config["pad_token_id"]
    assert tokenizer.padding_side == "left"


def test_the_base_picture_maker_has_sdxs_512s_sizes() -> None:
    """SDXS-512's UNet has 319M parameters by its paper (316M by diffusers' count of the
    published config), its text encoder is CLIP ViT-L/14's (123M), TAESD 2.4M: the bench's
    seconds per picture are only the default model's if these hold."""
    with torch.device("meta"):
        parts = picture_models(BASE)
    millions = {
        name: sum(p.numel() for p in parts[name].parameters()) / 1e6
        for name in ("unet", "text_encoder", "vae")
    }
    assert round(millions["unet"]) == 316
    assert round(millions["text_encoder"]) == 123
    assert round(millions["vae"], 1) == 2.4
    latent_scale = 2 ** (len(parts["vae"].config.block_out_channels) - 1)
    assert latent_scale * parts["unet"].config.sample_size == 512
