"""The ONNX path: encoder models answer exactly as on torch, exported once, torch when in doubt."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from transformers import AutoModelForSequenceClassification

from bot.config import Settings
from bot.engine import onnx_export
from bot.engine.onnx_export import PROBES, TOLERANCE, OnnxAccelerator, OnnxModel
from bot.engine.pool import PipelinePool, default_loader
from bot.monitoring.bot_metrics import BotMetrics
from bot.offline import demo_models
from bot.tasks import TASKS, Ranking, TaskSpec

TEXTS = [
    "The film was terrible, I hated every minute.",
    "Paris is the capital of France.",
    "ok",
    "Once upon a time there was a small robot who wanted to learn how to read books. " * 12,
]
MASKED = ["Paris is the <mask> of France.", "The robot [MASK] a new story every morning."]
QUESTIONS = [
    {"question": "Where does Alice live?", "context": "Alice lives in London with her cat."},
    {"question": "Who won?", "context": "The team won the match in the last minute."},
    {"question": "What?", "context": "Bob travelled from Berlin to Rome by train. " * 10},
]
IMAGES = [
    Image.new("RGB", (120, 80), (10, 200, 30)),
    Image.linear_gradient("L").convert("RGB"),
]
# Per command: its tiny model builder, inputs, the request's own arguments, and the text a
# reply is shown against (the formatter's second argument).
CASES: dict[str, tuple[Callable[[Path], Path], list[Any], dict[str, Any]]] = {
    "sentiment": (demo_models.tiny_classifier, TEXTS, {}),
    "ner": (demo_models.tiny_ner, TEXTS, {}),
    "fill": (demo_models.tiny_fill_mask, MASKED, {}),
    "classify": (demo_models.tiny_zero_shot, TEXTS, {"candidate_labels": ["books", "food", "war"]}),
    "ask": (demo_models.tiny_qa, QUESTIONS, {}),
    "whatis": (demo_models.tiny_image_classifier, IMAGES, {}),
}


def cpu_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "pool_device": "cpu",
        "pool_dtype": "float32",
        "engine_onnx_cache_dir": tmp_path / "onnx",
        "engine_onnx_quiet_s": 0.0,
    }
    return Settings(_env_file=None, **(values | overrides))


def accelerator(cache_dir: Path) -> OnnxAccelerator:
    found = OnnxAccelerator.for_device("auto", "cpu", cache_dir)
    assert found is not None, "onnxruntime is a dependency and serves the CPU"
    return found


class Recording:
    """A model (torch or ONNX) that keeps every output it gives, for comparing logits."""

    def __init__(self, model: Any) -> None:
        self.wrapped = model
        self.outputs: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def __call__(self, **inputs: Any) -> Any:
        answer = self.wrapped(**inputs)
        self.outputs.append(answer)
        return answer

    def forward(self, **inputs: Any) -> Any:
        return self(**inputs)


def run_recorded(runner: Any, inputs: list[Any], params: dict[str, Any]) -> tuple[list[Any], Any]:
    """The runner's results for a batch, and every output its model gave on the way."""
    model = runner.model
    recording = Recording(model)
    runner.model = recording
    try:
        with torch.inference_mode():
            results = runner(list(inputs), batch_size=2, **params)
    finally:
        runner.model = model
    return results, recording.outputs


def shown(spec: TaskSpec, inputs: list[Any], results: list[Any]) -> list[str]:
    """What people read: each result through its command's formatter."""
    texts = [item["context"] if isinstance(item, dict) else str(item) for item in inputs]
    pairs = zip(results, texts, strict=True)
    return [spec.result.format(spec.result.read(result), text) for result, text in pairs]


def assert_same_answers(
    spec: TaskSpec, torch_runner: Any, onnx_runner: Any, inputs: list[Any], extra: dict[str, Any]
) -> None:
    kwargs = spec.call_kwargs(spec.default_params(), extra)
    expected, torch_outputs = run_recorded(torch_runner, inputs, kwargs)
    got, onnx_outputs = run_recorded(onnx_runner, inputs, kwargs)

    assert isinstance(onnx_runner.model, OnnxModel)
    assert len(onnx_outputs) == len(torch_outputs) > 0
    for theirs, ours in zip(torch_outputs, onnx_outputs, strict=True):
        assert type(ours) is type(theirs)
        for name, logits in theirs.items():
            assert (ours[name] - logits).abs().max() <= TOLERANCE
    assert shown(spec, inputs, got) == shown(spec, inputs, expected)


@pytest.mark.parametrize("command", list(CASES))
def test_each_encoder_command_answers_on_onnx_exactly_as_on_torch(
    command: str, tiny_models_dir: Path, tmp_path: Path
) -> None:
    """Logits within 1e-3 on inputs the export was never checked on (one longer than the
    model reads), and the same labels, entity spans and scores shown to people."""
    build, inputs, extra = CASES[command]
    spec = TASKS[command]
    model = str(build(tiny_models_dir))
    settings = cpu_settings(tmp_path)
    torch_runner = default_loader(settings)(spec.pipeline_task, model)
    onnx_runner = default_loader(settings, accelerator(tmp_path / "onnx"))(
        spec.pipeline_task, model
    )

    assert_same_answers(spec, torch_runner, onnx_runner, inputs, extra)


def test_every_task_on_the_onnx_path_is_an_encoder_command_of_the_registry() -> None:
    assert set(PROBES) == {TASKS[command].pipeline_task for command in CASES}


def test_a_real_size_bert_classifier_answers_on_onnx_as_on_torch(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    """A 6-layer, 768-wide BERT with a 30522-word vocabulary: the size of the default model."""
    model = str(demo_models.tiny_classifier(tiny_models_dir, demo_models.BASE))
    spec = TASKS["sentiment"]
    settings = cpu_settings(tmp_path)
    torch_runner = default_loader(settings)(spec.pipeline_task, model)
    onnx_runner = default_loader(settings, accelerator(tmp_path / "onnx"))(
        spec.pipeline_task, model
    )
    texts = [" ".join(demo_models.WORDS[i : i + 3 + i % 20]) for i in range(0, 64, 4)]

    assert_same_answers(spec, torch_runner, onnx_runner, texts, {})
    assert isinstance(onnx_runner.model, OnnxModel) and onnx_runner.model.split_rows
    assert {path.name for path in (tmp_path / "onnx").glob("*/*.onnx")} == {
        onnx_export.TRACED,
        onnx_export.OPTIMIZED,
    }
    fused = onnx.load(next((tmp_path / "onnx").glob(f"*/{onnx_export.OPTIMIZED}")))
    assert [node.op_type for node in fused.graph.node].count("Attention") == 6


def test_a_padded_batch_runs_as_sub_batches_of_similar_lengths() -> None:
    lengths = [3, 20, 4, 19, 3, 20, 5, 18]
    mask = (np.arange(20) < np.array(lengths)[:, None]).astype(np.int64)

    groups = onnx_export._sub_batches(mask, overhead=8)

    assert groups is not None
    assert sorted(int(row) for rows, _ in groups for row in rows) == list(range(len(lengths)))
    assert [length for _, length in groups] == [5, 20]
    assert all(length == max(lengths[row] for row in rows) for rows, length in groups)
    assert onnx_export._sub_batches(mask, overhead=1000) is None  # one run is cheaper
    assert onnx_export._sub_batches(mask[:, ::-1].copy(), overhead=8) is None  # padded left
    assert onnx_export._sub_batches(np.ones((4, 7), np.int64), overhead=0) is None


def test_a_model_is_exported_once_and_its_export_reused_after_a_restart(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "onnx"
    first = accelerator(cache)
    load = default_loader(cpu_settings(tmp_path), first)
    load("text-classification", str(tiny_classifier))
    load("text-classification", str(tiny_classifier))
    restarted = accelerator(cache)
    runner: Any = default_loader(cpu_settings(tmp_path), restarted)(
        "text-classification", str(tiny_classifier)
    )

    assert first.counts().exports == 1
    assert restarted.counts().exports == 0
    assert isinstance(runner.model, OnnxModel)


def test_an_export_is_found_again_whatever_order_the_pipeline_hands_its_inputs_in(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    """A batched pipeline gathers its inputs through a set of names, so their order follows
    each process's string hashing: half of all restarts used to miss the export and redo it."""
    runner: Any = default_loader(cpu_settings(tmp_path))(
        "text-classification", str(tiny_classifier)
    )
    inputs = {"input_ids": torch.ones(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3)}
    reordered = dict(reversed(list(inputs.items())))

    key = onnx_export.cache_key("text-classification", runner.model, inputs)

    assert onnx_export.cache_key("text-classification", runner.model, reordered) == key


def test_a_model_whose_weights_change_is_exported_again_and_answers_with_the_new_ones(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "classifier"
    shutil.copytree(tiny_classifier, folder)
    onnx = accelerator(tmp_path / "onnx")
    load = default_loader(cpu_settings(tmp_path), onnx)
    before = load("text-classification", str(folder))(["I love it."], batch_size=1)[0]
    other = next(label for label in demo_models.SENTIMENT_LABELS if label != before["label"])
    changed = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        changed.classifier.bias[changed.config.label2id[other]] = 10.0
    changed.save_pretrained(folder)

    after = load("text-classification", str(folder))(["I love it."], batch_size=1)[0]

    assert onnx.counts().exports == 2
    assert after["label"] == other
    assert after["score"] > 0.99


def test_a_model_that_fails_to_export_runs_on_torch_logged_once_and_counted(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_export, "_export", broken)
    onnx = accelerator(tmp_path / "onnx")
    load = default_loader(cpu_settings(tmp_path), onnx)

    with caplog.at_level(logging.WARNING, logger="bot.engine.onnx_export"):
        runners: list[Any] = [load("text-classification", str(tiny_classifier)) for _ in range(2)]

    assert all(isinstance(r.model, torch.nn.Module) for r in runners)
    assert runners[1](["I love it."], batch_size=1)[0]["label"] in demo_models.SENTIMENT_LABELS
    assert onnx.counts().fallbacks == 2
    assert [r.getMessage() for r in caplog.records] == [
        "text-classification:local/classifier runs on torch: its ONNX export failed or did not "
        "match (unsupported operator)"
    ]
    assert not list((tmp_path / "onnx").glob("*/model.onnx"))


def test_an_export_that_does_not_match_torch_is_not_used(
    tiny_ner: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)
    onnx = accelerator(tmp_path / "onnx")

    runner: Any = default_loader(cpu_settings(tmp_path), onnx)(
        "token-classification", str(tiny_ner)
    )

    assert isinstance(runner.model, torch.nn.Module)
    assert onnx.counts().fallbacks == 1


async def test_the_pool_serves_encoder_tasks_on_onnx_and_shows_it_in_metrics(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PipelinePool(cpu_settings(tmp_path)) as pool:
        result = await pool.submit(
            "text-classification", "sentiment", "I love it.", {}, source=str(tiny_classifier)
        )
        await pool.upgrades_done()
        async with pool.lease("text-classification", "sentiment") as runner:
            model = getattr(runner, "model", None)
        metrics = BotMetrics()
        metrics.watch_pool(pool.metrics.snapshot)
        exposed = metrics.render().decode()

    assert isinstance(result, Ranking) and result.best.label in demo_models.SENTIMENT_LABELS
    assert isinstance(model, OnnxModel) and model.weight_bytes > 0
    assert "hfbot_pool_onnx_exports_total 1.0" in exposed
    assert "hfbot_pool_onnx_fallbacks_total 0.0" in exposed


async def test_a_broken_export_shows_in_metrics_and_the_request_is_answered_on_torch(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_export, "_export", broken)
    async with PipelinePool(cpu_settings(tmp_path)) as pool:
        result = await pool.submit("text-classification", str(tiny_classifier), "I love it.")
        await pool.upgrades_done()
        snapshot = pool.metrics.snapshot()

    assert isinstance(result, Ranking) and result.best.label in demo_models.SENTIMENT_LABELS
    assert (snapshot.onnx_exports, snapshot.onnx_fallbacks) == (0, 1)


async def test_engine_onnx_off_keeps_every_model_on_torch(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HFBOT_ENGINE_ONNX", "off")
    settings = Settings(_env_file=None, pool_device="cpu", engine_onnx_cache_dir=tmp_path)
    async with PipelinePool(settings) as pool:
        await pool.submit("text-classification", str(tiny_classifier), "I love it.")
        async with pool.lease("text-classification", str(tiny_classifier)) as runner:
            model = getattr(runner, "model", None)

    assert settings.engine_onnx == "off"
    assert pool.onnx is None
    assert isinstance(model, torch.nn.Module)
    assert not os.listdir(tmp_path)


async def test_a_first_request_is_answered_on_torch_while_its_export_runs_then_onnx_serves(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    export = onnx_export._export

    def slow_export(*args: Any) -> None:
        started.set()
        release.wait(10)
        export(*args)

    monkeypatch.setattr(onnx_export, "_export", slow_export)
    async with PipelinePool(cpu_settings(tmp_path)) as pool:
        first = await pool.submit(
            "text-classification", "sentiment", "Hi.", source=str(tiny_classifier)
        )
        await asyncio.to_thread(started.wait, 10)
        async with pool.lease("text-classification", "sentiment") as runner:
            during = getattr(runner, "model", None)
        second = await pool.submit(
            "text-classification", "sentiment", "Hi.", source=str(tiny_classifier)
        )
        assert pool.onnx is not None and pool.onnx.exporting(
            "text-classification", str(tiny_classifier)
        )
        release.set()
        await pool.upgrades_done()
        async with pool.lease("text-classification", "sentiment") as runner:
            after = getattr(runner, "model", None)
        third = await pool.submit(
            "text-classification", "sentiment", "Hi.", source=str(tiny_classifier)
        )

    assert isinstance(during, torch.nn.Module)
    assert isinstance(after, OnnxModel)
    assert first == second == third


async def test_after_a_restart_a_model_exported_before_serves_on_onnx_from_its_first_request(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    async with PipelinePool(cpu_settings(tmp_path)) as first_life:
        await first_life.submit("text-classification", str(tiny_classifier), "I love it.")
        await first_life.upgrades_done()
    async with PipelinePool(cpu_settings(tmp_path)) as second_life:
        await second_life.submit("text-classification", str(tiny_classifier), "I love it.")
        async with second_life.lease("text-classification", str(tiny_classifier)) as runner:
            model = getattr(runner, "model", None)
        exports = second_life.metrics.snapshot().onnx_exports

    assert isinstance(model, OnnxModel)
    assert exports == 0


def int8_accelerator(cache_dir: Path, **options: Any) -> OnnxAccelerator:
    found = OnnxAccelerator.for_device("int8", "cpu", cache_dir)
    assert found is not None and found.int8
    for name, value in options.items():
        setattr(found, name, value)
    return found


@pytest.mark.parametrize("command", list(CASES))
def test_in_int8_mode_each_command_serves_int8_only_where_people_see_torchs_answers(
    command: str, tiny_models_dir: Path, tmp_path: Path
) -> None:
    """Quantized or not, what people read is torch's: labels, spans and order exactly,
    every score within the stated tolerance; a model int8 cannot serve so stays on float."""
    build, inputs, extra = CASES[command]
    spec = TASKS[command]
    model = str(build(tiny_models_dir))
    settings = cpu_settings(tmp_path)
    kwargs = spec.call_kwargs(spec.default_params(), extra)
    onnx = int8_accelerator(tmp_path / "onnx")
    torch_runner = default_loader(settings)(spec.pipeline_task, model)
    runner: Any = default_loader(settings, onnx)(spec.pipeline_task, model)

    assert isinstance(runner.model, OnnxModel)
    counts = onnx.counts()
    assert counts.int8 + counts.int8_fallbacks == 1
    served = runner.model.path
    assert served is not None
    assert (served.name == onnx_export.QUANTIZED) == (counts.int8 == 1)
    probes = onnx_export.PROBES[spec.pipeline_task]
    for probe in probes:
        with torch.inference_mode():
            expected = torch_runner(
                list(probe.inputs), batch_size=len(probe.inputs), **probe.params
            )
        got = runner(list(probe.inputs), batch_size=len(probe.inputs), **probe.params)
        assert onnx_export.answers_differ(expected, got, onnx_export.INT8_SCORE_TOLERANCE) is None
    assert len(runner(list(inputs), batch_size=2, **kwargs)) == len(inputs)


def test_a_real_size_bert_classifier_serves_int8_with_torchs_labels(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    model = str(demo_models.tiny_classifier(tiny_models_dir, demo_models.BASE))
    spec = TASKS["sentiment"]
    settings = cpu_settings(tmp_path)
    onnx = int8_accelerator(tmp_path / "onnx")
    torch_runner = default_loader(settings)(spec.pipeline_task, model)
    runner: Any = default_loader(settings, onnx)(spec.pipeline_task, model)
    texts = [" ".join(demo_models.WORDS[i : i + 3 + i % 20]) for i in range(0, 64, 4)]

    assert isinstance(runner.model, OnnxModel) and runner.model.path is not None
    assert runner.model.path.name == onnx_export.QUANTIZED
    assert onnx.counts().int8 == 1
    with torch.inference_mode():
        expected = torch_runner(texts, batch_size=16)
    got = runner(texts, batch_size=16)
    assert [r["label"] for r in got] == [r["label"] for r in expected]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(got, expected, strict=True)) < 0.05
    [float_graph] = (tmp_path / "onnx").glob(f"*/{onnx_export.OPTIMIZED}")
    assert runner.model.weight_bytes < onnx_export._graph_bytes(float_graph) / 3, "int8 weights"


def test_an_int8_graph_that_answers_unlike_torch_stays_on_float_logged_once_and_counted(
    tiny_classifier: Path, tmp_path: Path, caplog: Any
) -> None:
    onnx = int8_accelerator(tmp_path / "onnx", int8_score_tolerance=0.0)
    load = default_loader(cpu_settings(tmp_path), onnx)

    with caplog.at_level(logging.WARNING, logger="bot.engine.onnx_export"):
        runners: list[Any] = [load("text-classification", str(tiny_classifier)) for _ in range(2)]

    for runner in runners:
        assert isinstance(runner.model, OnnxModel)
        assert runner.model.path is not None
        assert runner.model.path.name != onnx_export.QUANTIZED
    assert onnx.counts().int8_fallbacks == 2 and onnx.counts().int8 == 0
    [warning] = [r.getMessage() for r in caplog.records]
    assert warning.startswith(
        "text-classification:local/classifier serves its float ONNX graph, not int8 "
        "(its int8 graph answers unlike torch: answer[0]"
    )


def test_answers_differ_on_labels_spans_and_order_but_not_on_scores_within_tolerance() -> None:
    torch_says = [{"label": "POSITIVE", "score": 0.91}]
    assert (
        onnx_export.answers_differ(torch_says, [{"label": "POSITIVE", "score": 0.93}], 0.05) is None
    )
    assert onnx_export.answers_differ(torch_says, [{"label": "NEGATIVE", "score": 0.91}], 0.05) == (
        "answer[0].label is 'NEGATIVE', torch gives 'POSITIVE'"
    )
    assert onnx_export.answers_differ(torch_says, [{"label": "POSITIVE", "score": 0.8}], 0.05) == (
        "answer[0].score differs by 0.11"
    )
    span = {"entity_group": "PER", "score": 0.7, "word": "Alice", "start": 0, "end": 5}
    assert onnx_export.answers_differ([span], [span | {"end": 4}], 0.05) == (
        "answer[0].end is 4, torch gives 5"
    )
    ranking = {"sequence": "x", "labels": ["books", "food"], "scores": [0.6, 0.4]}
    swapped = {"sequence": "x", "labels": ["food", "books"], "scores": [0.6, 0.4]}
    assert onnx_export.answers_differ(ranking, swapped, 0.05) is not None
    assert onnx_export.answers_differ([span], [span, span], 0.05) == "answer has another length"


def test_int8_is_for_the_cpu_a_gpu_serves_the_float_graph(tmp_path: Path) -> None:
    cpu = OnnxAccelerator.for_device("int8", "cpu", tmp_path)
    auto = OnnxAccelerator.for_device("auto", "cpu", tmp_path)
    assert cpu is not None and cpu.int8
    assert auto is not None and not auto.int8


def test_on_onnx_the_torch_model_is_let_go_and_the_weights_live_beside_the_graph(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    """The pipeline keeps only the model's config: nothing holds the torch weights."""
    torch_runner: Any = default_loader(cpu_settings(tmp_path))(
        "text-classification", str(tiny_classifier)
    )
    torch_model = weakref.ref(torch_runner.model)
    runner = accelerator(tmp_path / "onnx").accelerate(
        "text-classification", str(tiny_classifier), torch_runner
    )
    gc.collect()

    assert isinstance(getattr(runner, "model", None), OnnxModel)
    assert torch_model() is None
    graphs = {path.name for path in (tmp_path / "onnx").glob("*/*")}
    assert {onnx_export.TRACED + ".data", onnx_export.OPTIMIZED + ".data"} <= graphs


def test_exports_at_once_in_one_process_each_serve_on_onnx(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    """Two pools in one process (replicas in a test, a bench's bots) may export at once;
    torch.onnx's exporter keeps its state in module globals, so they must take turns."""
    accelerators = [accelerator(tmp_path / f"onnx-{index}") for index in range(3)]
    loaded = [
        default_loader(cpu_settings(tmp_path))("text-classification", str(tiny_classifier))
        for _ in accelerators
    ]
    start = threading.Barrier(len(accelerators))
    served: list[Any] = [None] * len(accelerators)

    def export(index: int) -> None:
        start.wait()
        served[index] = accelerators[index].accelerate(
            "text-classification", str(tiny_classifier), loaded[index]
        )

    threads = [threading.Thread(target=export, args=(index,)) for index in range(len(accelerators))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [type(runner.model) for runner in served] == [OnnxModel] * len(accelerators)
    assert [each.counts().exports for each in accelerators] == [1] * len(accelerators)


def restarted(cache: Path, tmp_path: Path, task: str, model: str, **options: Any) -> Any:
    """The runner a restarted pool's first request gets from the export on disk, built
    without the torch weights; None where it must load them."""
    onnx = OnnxAccelerator.for_device(options.pop("setting", "auto"), "cpu", cache)
    assert onnx is not None
    without_weights = default_loader(cpu_settings(tmp_path), weights=False)
    return onnx.from_disk(task, model, lambda: without_weights(task, model))


@pytest.mark.parametrize("command", list(CASES))
def test_after_a_restart_each_command_serves_on_onnx_without_torch_weights_as_on_torch(
    command: str, tiny_models_dir: Path, tmp_path: Path
) -> None:
    """The export kept torch's answers on the probes; the next life checks the session
    against them and never reads the weights, and people still see torch's answers."""
    build, inputs, extra = CASES[command]
    spec = TASKS[command]
    model = str(build(tiny_models_dir))
    settings = cpu_settings(tmp_path)
    default_loader(settings, accelerator(tmp_path / "onnx"))(spec.pipeline_task, model)
    torch_runner = default_loader(settings)(spec.pipeline_task, model)

    served = restarted(tmp_path / "onnx", tmp_path, spec.pipeline_task, model)

    assert served is not None
    assert_same_answers(spec, torch_runner, served, inputs, extra)


def test_after_a_restart_int8_is_checked_against_torchs_kept_answers(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    int8_accelerator(tmp_path / "onnx").accelerate(
        "text-classification",
        str(tiny_classifier),
        default_loader(cpu_settings(tmp_path))("text-classification", str(tiny_classifier)),
    )

    served = restarted(
        tmp_path / "onnx", tmp_path, "text-classification", str(tiny_classifier), setting="int8"
    )

    assert served is not None and served.model.path.name == onnx_export.QUANTIZED


def test_an_export_without_kept_answers_loads_with_weights_once_and_keeps_them(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    """Exports from before answers were kept: the first load reads the weights (and keeps
    torch's answers), the next does not need to."""
    cache, model = tmp_path / "onnx", str(tiny_classifier)
    load = default_loader(cpu_settings(tmp_path), accelerator(cache))
    load("text-classification", model)
    for record in cache.glob(f"*/{onnx_export.RECORD}"):
        record.unlink()

    before = restarted(cache, tmp_path, "text-classification", model)
    reloaded: Any = load("text-classification", model)
    after = restarted(cache, tmp_path, "text-classification", model)

    assert before is None
    assert isinstance(reloaded.model, OnnxModel)
    assert after is not None and isinstance(after.model, OnnxModel)


@pytest.mark.parametrize("damage", ["answers", "file"])
def test_kept_answers_the_session_does_not_give_mean_a_load_with_weights(
    damage: str, tiny_classifier: Path, tmp_path: Path
) -> None:
    cache, model = tmp_path / "onnx", str(tiny_classifier)
    load = default_loader(cpu_settings(tmp_path), accelerator(cache))
    load("text-classification", model)
    record = next(cache.glob(f"*/{onnx_export.RECORD}"))
    if damage == "file":
        record.write_bytes(b"not an archive")
    else:
        calls, answers = onnx_export._load_record(record, torch.device("cpu"))
        shifted = [
            onnx_export._Call(
                call.inputs, {k: v + 1 for k, v in call.outputs.items()}, call.output_type
            )
            for call in calls
        ]
        onnx_export._keep_record("test", record, shifted, answers)

    assert restarted(cache, tmp_path, "text-classification", model) is None
    reloaded: Any = load("text-classification", model)
    assert isinstance(reloaded.model, OnnxModel)
    assert reloaded(["I love it."], batch_size=1)[0]["label"] in demo_models.SENTIMENT_LABELS
    assert restarted(cache, tmp_path, "text-classification", model) is not None


# One fresh process: the pool loads a classifier with one batch of 32 requests; printed,
# in MiB, the resident memory that added and the process's peak above where it started
# (Linux: the peak is the kernel's high-water mark of the process's resident memory).
_MEMORY_OF_ONE_LOAD = """
import asyncio, json, sys
from pathlib import Path
import psutil
from bot.config import Settings
from bot.engine.onnx_export import OnnxModel
from bot.engine.pool import PipelinePool

async def main():
    engine, model, cache = sys.argv[1:4]
    settings = Settings(_env_file=None, pool_device="cpu", pool_dtype="float32",
                        engine_onnx=engine, engine_onnx_cache_dir=Path(cache))
    async with PipelinePool(settings) as pool:
        before = psutil.Process().memory_info().rss
        texts = [f"I liked it {n} times, then less." for n in range(32)]
        await asyncio.gather(*(pool.submit("text-classification", model, t) for t in texts))
        after = psutil.Process().memory_info().rss
        async with pool.lease("text-classification", model) as runner:
            onnx = isinstance(getattr(runner, "model", None), OnnxModel)
    # VmHWM: this address space's highest RSS; ru_maxrss would carry the parent's over exec.
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    peak = int(status.split()[0]) * 1024
    print(json.dumps({"onnx": onnx, "added": (after - before) / 2**20,
                      "peak": (peak - before) / 2**20}))

asyncio.run(main())
"""


def memory_of_one_load(engine: str, model: str, cache: Path) -> dict[str, Any]:
    command = [sys.executable, "-c", _MEMORY_OF_ONE_LOAD, engine, model, str(cache)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def test_a_restarted_real_size_model_on_onnx_takes_no_more_memory_than_on_torch(
    tiny_models_dir: Path, tmp_path: Path
) -> None:
    """Loaded from its export, the model never holds torch's weights beside the session
    (before, a restart peaked at about 1.8x torch's memory: both at once), and an int8
    model never its float graph's beside its own."""
    model = str(demo_models.tiny_classifier(tiny_models_dir, demo_models.BASE))
    cache = tmp_path / "onnx"
    default_loader(cpu_settings(tmp_path), int8_accelerator(cache))("text-classification", model)

    on_torch = memory_of_one_load("off", model, cache)
    on_onnx = memory_of_one_load("auto", model, cache)
    on_int8 = memory_of_one_load("int8", model, cache)

    assert on_onnx["onnx"] and on_int8["onnx"] and not on_torch["onnx"]
    assert on_onnx["peak"] <= 1.15 * on_torch["peak"]
    assert on_onnx["added"] <= 1.05 * on_torch["added"]
    assert on_int8["peak"] <= 0.6 * on_torch["peak"]
