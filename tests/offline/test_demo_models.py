"""The demo-model builders: benchmarks rely on the BASE scale being the real size.

Benchmark figures are only comparable with trained models if the random-weight
stand-ins have the real architecture and vocabulary size, so these tests pin that,
and that a GPT-2 built without an end-of-sequence token can still batch prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer, GenerationConfig

from bot.offline.demo_models import BASE, TINY, WORDS, tiny_classifier, tiny_gpt2


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
