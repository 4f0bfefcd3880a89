"""Runners answer lists of inputs with one result per input, in order, like a pipeline."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import GPT2LMHeadModel, LlamaForCausalLM, PreTrainedModel

from bot.engine.runners import (
    ExtractiveQARunner,
    Seq2SeqRunner,
    load_runner,
    resolve_device,
    resolve_dtype,
)
from bot.errors import ContextTooLong, UnspeakableText
from bot.offline.demo_models import DEMO_BUILDERS, NER_LABELS, SENTIMENT_LABELS
from bot.tasks import TASKS, TaskSpec

CPU = {"device": "cpu", "dtype": "float32"}


def test_classifier_runner_labels_every_text_in_a_batch(tiny_classifier: Path) -> None:
    runner = load_runner("text-classification", str(tiny_classifier), **CPU)

    results = runner(["I love it.", "I hate it.", "Fine."], batch_size=2)

    assert len(results) == 3
    assert all(result["label"] in SENTIMENT_LABELS for result in results)


def test_generation_runner_pads_prompts_on_the_left_and_has_a_pad_token(tiny_gpt2: Path) -> None:
    runner = load_runner("text-generation", str(tiny_gpt2), **CPU)

    results = runner(
        ["Once upon a time", "The robot"], batch_size=2, max_new_tokens=4, do_sample=False
    )

    assert runner.tokenizer.padding_side == "left"
    assert runner.tokenizer.pad_token is not None
    assert results[0][0]["generated_text"].startswith("Once upon a time")
    assert results[1][0]["generated_text"].startswith("The robot")


def test_batched_generation_continues_each_prompt_as_it_would_alone(tiny_gpt2: Path) -> None:
    runner = load_runner("text-generation", str(tiny_gpt2), **CPU)
    prompts = ["Once upon a time there was", "The robot"]
    greedy = {"max_new_tokens": 5, "do_sample": False}

    alone = [runner([prompt], batch_size=1, **greedy)[0] for prompt in prompts]
    together = runner(prompts, batch_size=2, **greedy)

    assert together == alone


def test_models_loaded_at_once_answer_as_each_does_loaded_alone(
    tiny_gpt2: Path, tiny_chat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two caches (replicas in one process, say) may load at the same moment.

    The story model is held inside its construction until the chat model is being
    constructed too, which only a loader that lets loads overlap allows (it waits
    2 s for that, then goes on); the chat model then finishes last. Both have tied
    input and output embeddings, which transformers ties after construction.
    """
    greedy = {"max_new_tokens": 8, "do_sample": False}

    def answer(runner: Any) -> Any:
        return runner(["Once upon a time"], batch_size=1, **greedy)

    story_alone = answer(load_runner("text-generation", str(tiny_gpt2), **CPU))
    chat_alone = answer(load_runner("text-generation", str(tiny_chat), **CPU))
    # whatever this test does to transformers, later tests get it back as it was
    monkeypatch.setattr(PreTrainedModel, "tie_weights", PreTrainedModel.tie_weights)
    story_inside = threading.Event()
    chat_inside = threading.Event()
    story_loaded = threading.Event()
    build_story, build_chat = GPT2LMHeadModel.__init__, LlamaForCausalLM.__init__

    def held_story(model: GPT2LMHeadModel, *args: Any, **kwargs: Any) -> None:
        build_story(model, *args, **kwargs)
        story_inside.set()
        chat_inside.wait(timeout=2)

    def held_chat(model: LlamaForCausalLM, *args: Any, **kwargs: Any) -> None:
        build_chat(model, *args, **kwargs)
        chat_inside.set()
        story_loaded.wait(timeout=30)

    monkeypatch.setattr(GPT2LMHeadModel, "__init__", held_story)
    monkeypatch.setattr(LlamaForCausalLM, "__init__", held_chat)

    def load_story() -> Any:
        try:
            return load_runner("text-generation", str(tiny_gpt2), **CPU)
        finally:
            story_loaded.set()

    def load_chat() -> Any:
        story_inside.wait(timeout=30)
        return load_runner("text-generation", str(tiny_chat), **CPU)

    with ThreadPoolExecutor(max_workers=2) as threads:
        story, chat = threads.submit(load_story), threads.submit(load_chat)
        story_runner, chat_runner = story.result(), chat.result()
    story_after = load_runner("text-generation", str(tiny_gpt2), **CPU)

    assert answer(story_runner) == story_alone
    assert answer(chat_runner) == chat_alone
    assert answer(story_after) == story_alone, "a model loaded later is not left broken"


def test_ner_runner_tags_entities_with_the_models_labels(tiny_ner: Path) -> None:
    runner = load_runner("token-classification", str(tiny_ner), **CPU)

    results = runner(["Alice lives in London.", "Bob"], batch_size=2)

    assert len(results) == 2
    assert {entity["entity"] for entity in results[0]} <= set(NER_LABELS)


def test_fill_mask_runner_proposes_top_k_words_per_text(tiny_fill_mask: Path) -> None:
    runner = load_runner("fill-mask", str(tiny_fill_mask), **CPU)

    results = runner(["Paris is the [MASK] of France.", "The [MASK] won."], batch_size=2, top_k=3)

    assert [len(proposals) for proposals in results] == [3, 3]


def test_zero_shot_runner_ranks_the_candidate_labels_it_was_given(tiny_zero_shot: Path) -> None:
    runner = load_runner("zero-shot-classification", str(tiny_zero_shot), **CPU)

    results = runner(
        ["The team won the match.", "A new law."],
        batch_size=2,
        candidate_labels=["sports", "politics"],
    )

    assert [result["sequence"] for result in results] == ["The team won the match.", "A new law."]
    assert all(sorted(result["labels"]) == ["politics", "sports"] for result in results)


@pytest.mark.parametrize(
    ("task", "key"), [("summarization", "summary_text"), ("translation", "translation_text")]
)
def test_seq2seq_runner_gives_one_text_per_input(tiny_seq2seq: Path, task: str, key: str) -> None:
    runner = load_runner(task, str(tiny_seq2seq), **CPU)

    results = runner(["The robot read a story.", "Paris.", "Hello"], batch_size=2, max_new_tokens=4)

    assert isinstance(runner, Seq2SeqRunner)
    assert len(results) == 3
    assert all(list(result) == [key] and isinstance(result[key], str) for result in results)


def test_seq2seq_runner_returns_a_list_per_input_when_asked_for_several(tiny_seq2seq: Path) -> None:
    runner = load_runner("summarization", str(tiny_seq2seq), **CPU)

    results = runner(
        ["The robot read a story.", "Paris."],
        batch_size=2,
        max_new_tokens=4,
        num_return_sequences=2,
    )

    assert [len(options) for options in results] == [2, 2]
    assert all("summary_text" in option for options in results for option in options)


def test_seq2seq_batch_gives_the_same_texts_as_one_at_a_time(tiny_seq2seq: Path) -> None:
    runner = load_runner("translation", str(tiny_seq2seq), **CPU)
    texts = ["The robot wanted to learn how to read books.", "Paris."]

    alone = [runner([text], batch_size=1, max_new_tokens=4)[0] for text in texts]

    assert runner(texts, batch_size=2, max_new_tokens=4) == alone


def test_qa_runner_answers_with_a_span_of_the_context(tiny_qa: Path) -> None:
    runner = load_runner("question-answering", str(tiny_qa), **CPU)
    items = [
        {"question": "Where does Alice live?", "context": "Alice lives in London with her cat."},
        {"question": "What is the capital?", "context": "Paris is the capital of France."},
        {"question": "Who?", "context": "Bob"},
    ]

    results = runner(items, batch_size=2)

    assert isinstance(runner, ExtractiveQARunner)
    assert len(results) == 3
    for item, result in zip(items, results, strict=True):
        assert set(result) == {"answer", "score", "start", "end"}
        assert 0 <= result["start"] <= result["end"] <= len(item["context"])
        assert result["answer"] == item["context"][result["start"] : result["end"]]
        assert result["answer"]
        assert 0.0 < result["score"] <= 1.0


def test_qa_answer_never_starts_after_it_ends_nor_exceeds_thirty_tokens() -> None:
    runner = ExtractiveQARunner.__new__(ExtractiveQARunner)
    in_context = torch.tensor([False] + [True] * 40)
    start_logits = torch.zeros(41)
    end_logits = torch.zeros(41)
    start_logits[35] = 10.0
    end_logits[2] = 10.0

    start, end, _ = runner._best_span(start_logits, end_logits, in_context)

    assert 1 <= start <= end < start + ExtractiveQARunner.MAX_ANSWER_TOKENS


def test_an_unknown_task_fails_to_load(tiny_classifier: Path) -> None:
    with pytest.raises(KeyError):
        load_runner("no-such-task", str(tiny_classifier), **CPU)


def test_auto_device_and_dtype_mean_float32_on_a_cpu_only_machine() -> None:
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")

    assert resolve_device("auto") == "cpu"
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16


LONG_CJK = "这是一个很长的中文句子，讲的是一本书。" * 110  # 2,090 characters, about 2,100 tokens

LONG_INPUTS: dict[str, Any] = {
    "text": LONG_CJK,
    "translate": LONG_CJK,
    "labels": LONG_CJK,
    "mask": LONG_CJK + "[MASK]",
    "question": {"question": LONG_CJK, "context": LONG_CJK},
}


@pytest.mark.parametrize(
    "spec", [spec for spec in TASKS.values() if spec.input_kind == "text"], ids=lambda s: s.name
)
def test_a_text_far_longer_than_the_model_reads_gets_an_answer(
    spec: TaskSpec, tiny_models_dir: Path
) -> None:
    """Every text command, run with its registry row's own arguments on a 2,000-character
    Chinese text against a model that reads 128 tokens: an answer, or for generation the
    refusal that says the context is too long (for an English voice, that it cannot read
    Chinese), never a failed batch."""
    model = DEMO_BUILDERS[spec.name](tiny_models_dir)
    runner = load_runner(spec.pipeline_task, str(model), **CPU)
    extra = {"candidate_labels": ["books", "food"]} if spec.input_style == "labels" else {}
    params = spec.default_params()
    params.update({"max_new_tokens": 4} if "max_new_tokens" in params else {})
    kwargs = spec.call_kwargs(params, extra)
    if spec.pipeline_task == "text-generation":
        with pytest.raises(ContextTooLong):
            runner([LONG_INPUTS[spec.input_style]], batch_size=1, **kwargs)
        return
    if spec.output_kind == "voice":
        with pytest.raises(UnspeakableText):
            runner([LONG_INPUTS[spec.input_style]], batch_size=1, **kwargs)
        return
    [result] = runner([LONG_INPUTS[spec.input_style]], batch_size=1, **kwargs)
    assert spec.result.format(spec.result.read(result), LONG_CJK) is not None


def test_a_long_fill_text_keeps_its_gap_wherever_it_is(tiny_fill_mask: Path) -> None:
    runner = load_runner("fill-mask", str(tiny_fill_mask), **CPU)
    for text in (LONG_CJK + "[MASK]", "[MASK]" + LONG_CJK, LONG_CJK + "<mask>" + LONG_CJK):
        [candidates] = runner([text], batch_size=1)
        assert len(candidates) == 5


@pytest.mark.parametrize("spec", list(TASKS.values()), ids=lambda s: s.name)
def test_every_loader_refuses_pickle_weights_even_beside_a_decoy_safetensors_file(
    spec: TaskSpec, tiny_models_dir: Path, tmp_path: Path
) -> None:
    """Loading a pickle runs code: with only `pytorch_model.bin` (and a stray .safetensors
    file that is not the model's) every task's loader must fail rather than read it; a
    diffusers pipeline has such a pair in each component's folder."""
    original = DEMO_BUILDERS[spec.name](tiny_models_dir)
    folder = tmp_path / "pickled"
    shutil.copytree(original, folder)
    for weights in list(folder.rglob("*.safetensors")):
        pickled = weights.name.replace(".safetensors", ".bin")
        pickled = "pytorch_model.bin" if weights.name == "model.safetensors" else pickled
        torch.save(load_file(weights), weights.with_name(pickled))
        weights.rename(weights.with_name("decoy.safetensors"))

    with pytest.raises((OSError, ValueError), match="safetensors"):
        load_runner(spec.pipeline_task, str(folder), **CPU)
