"""ONNX Runtime for the encoder tasks: export a loaded model once, check it, serve it.

On a CPU, ONNX Runtime runs a BERT-family encoder about twice as fast as torch
(DESIGN.md, "Measured anchors"). `OnnxAccelerator.accelerate` takes a runner the
torch loader made and, for the tasks in `PROBES`, puts an `OnnxModel` where its
model was. The pipeline (or the bot's own runner) keeps every step around the
forward pass, tokenization, softmax, entity aggregation, zero-shot's NLI logic,
question answering's span search, so the labels, spans and scores people see come
from the same code whichever runtime computed the logits.

Loading a model on this path:
1. its task's probe inputs run through the runner on torch while a hook records
   every forward call: the exact tensors the pipeline hands the model, and the
   model's answer;
2. the model is exported from the first recorded call (`_export`) into a cache
   folder keyed by a hash of its config and weight files (or its Hub revision),
   its task, the inputs it takes and the versions that shape the graph; a later
   load of the same files reuses that export, changed files get a new one; the
   same folder keeps the graph fused by onnxruntime's transformer optimizer
   (`_optimize`);
3. the ONNX session (on the fused graph, else on the graph as traced) must answer
   every recorded call within `TOLERANCE` of torch before any request sees it, also
   through the sub-batch path (`_sub_batches`) where the model's outputs allow it.
A model that does not export, does not load in onnxruntime or does not match stays
on torch: logged once, counted in the pool's metrics, and not tried again in this
process. Once a session matches, what torch answered (every recorded call, and the
runner's answer to each probe) is kept in the folder too (`RECORD`).
4. with `HFBOT_ENGINE_ONNX=int8` (CPU), the served graph is also quantized once
   (onnxruntime's dynamic quantization: int8 weights, activations quantized per
   run) into the same folder, and served only if the probes, run whole through
   the runner, give torch's answers: the same labels, tokens, spans and order,
   every score within `INT8_SCORE_TOLERANCE`. Logits cannot be held to
   `TOLERANCE` there (int8 moves them by about 1e-2), so the check is on what
   people see. A quantized model that fails it stays on its float graph, logged
   once and counted (`hfbot_pool_onnx_int8_fallbacks`).

Loading a model whose export and record are on disk (every start after the first,
`OnnxAccelerator.from_disk`) reads no torch weights at all: the runner is built around
the model's layers without weights (`LoadOptions.weights`), which the pipeline's code
around the forward pass needs for the config, class, dtype and device; the probes run
only as far as the first forward call, for the inputs the cache key names; and the
session must give the recorded answers, as in step 3 (and step 4 for int8), before it
serves. Without a record, or where the session does not give it, the model loads with
its weights and goes through the steps above.

Memory: the torch model the probes ran on is dropped once the session serves (the
pipeline's tokenizer and post-processing need only its config), and the graphs keep
their weights in a file beside them (`<graph>.data`) that onnxruntime maps rather
than copies, so weights it never reads (most rows of the embedding table) take no
memory, as with torch's safetensors; sessions run without onnxruntime's memory
arena, which otherwise keeps the largest batch's activations for good. Loaded from
disk without torch's weights, a float ONNX classifier holds about what the same model
holds on torch (its graph's weights are torch's), never both at once, and an int8 one
less than half (bench/RESULTS.md, "ONNX Runtime"); the first load of a model, which
ran the probes on torch, keeps what torch's allocations left in the heap.

All of this runs on the pool's loading thread, on a second copy of the model
while the first one serves on torch (see `bot.engine.model_cache`). Nothing
here knows about Telegram.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch
from PIL import Image
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from bot.engine.metrics import OnnxCounts, model_label
from bot.engine.runners import Runner

log = logging.getLogger(__name__)

TOLERANCE = 1e-3
"""Largest difference from torch, in any logit of any probe, that an export may show."""

INT8_SCORE_TOLERANCE = 0.05
"""Largest difference from torch in any score (a probability) a quantized model may show on
its probes; its labels, tokens, spans and their order must be torch's exactly."""

# ONNX opset 17 is the first with a LayerNormalization operator, which onnxruntime's
# transformer fusions build on; the TorchScript exporter of every torch since 2.0 writes it.
OPSET = 17
# Part of every cache key: a change to how models are exported here invalidates old exports.
EXPORT_FORMAT = "hfbot-onnx-3"
# The cache folder of one export: the graph as traced, and the same graph with onnxruntime's
# transformer fusions applied (served when it exists and matches torch).
TRACED = "model.onnx"
OPTIMIZED = "optimized.onnx"
# The served float graph dynamically quantized to int8 (`HFBOT_ENGINE_ONNX=int8`).
QUANTIZED = "int8.onnx"
# Each graph's weights live beside it in `<graph>.data`, which onnxruntime maps into memory.
WEIGHTS_SUFFIX = ".data"
# What torch answered on the probes, kept beside the graphs once a session matched it.
RECORD = "probes.npz"
# onnxruntime's transformer optimizer knows these architectures by their own names;
# every other encoder here is BERT-shaped as far as its fusions are concerned.
_FUSION_TYPES = {"vit": "vit", "swin": "swin"}
# What one more session.run costs, counted in tokens of work (see `_sub_batches`).
RUN_OVERHEAD_TOKENS = 16

# onnxruntime's execution provider for each device the pool runs models on. A device
# without a row (mps) stays on torch; CPU is the fallback onnxruntime itself needs.
PROVIDERS: dict[str, tuple[str, ...]] = {
    "cpu": ("CPUExecutionProvider",),
    "cuda": ("CUDAExecutionProvider", "CPUExecutionProvider"),
}

# Files that define what the exported graph computes; tokenizers and processors do not.
_MODEL_FILES = ("config.json", "*.safetensors", "*.safetensors.index.json")

# The TorchScript exporter is chosen on purpose (see `_export`): its deprecation notice,
# and the tracer's notes on Python values it records as constants (the probes check the
# export on other batch sizes and lengths than it was traced with), are not news.
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
warnings.filterwarnings("ignore", message=r"Exporting aten::index operator")


@dataclass(frozen=True)
class ProbeCall:
    """One runner call, in the bot's own call shape, whose forward passes an export must match."""

    inputs: tuple[Any, ...]
    params: Mapping[str, Any] = field(default_factory=dict)


def _image(width: int, height: int, colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (width, height), colour)


_TEXTS = (
    "This book is awesome and I love it.",
    "Fine.",
    "Alice lives in London with her cat, and Bob travelled from Berlin to Rome by train.",
)
_TEXT_PROBES = (ProbeCall(_TEXTS), ProbeCall(_TEXTS[:1]))

PROBES: dict[str, tuple[ProbeCall, ...]] = {
    "text-classification": _TEXT_PROBES,
    "token-classification": _TEXT_PROBES,
    "fill-mask": (
        ProbeCall(
            ("Paris is the [MASK] of France.", "The [MASK] won the match in the last minute.")
        ),
        ProbeCall(("I [MASK] it.",)),
    ),
    "zero-shot-classification": (
        ProbeCall(_TEXTS, {"candidate_labels": ["books", "travel"]}),
        ProbeCall(_TEXTS[:1], {"candidate_labels": ["books"]}),
    ),
    "question-answering": (
        ProbeCall(
            (
                {"question": "Where does Alice live?", "context": _TEXTS[2]},
                {"question": "What is it?", "context": _TEXTS[0]},
            )
        ),
        ProbeCall(({"question": "Who?", "context": "Bob"},)),
    ),
    "image-classification": (
        ProbeCall((_image(64, 48, (200, 30, 30)), _image(20, 90, (10, 160, 220)))),
        ProbeCall((_image(32, 32, (250, 250, 250)),)),
    ),
}
"""The tasks that run on ONNX Runtime, each with the calls its exports are checked on.

Each first call batches inputs of different lengths, so the traced graph sees
padding; the lone call then checks a batch of another size without any.
"""


class ModelRunner(Runner, Protocol):
    """A runner whose model can be swapped: every runner of a task in `PROBES` is one."""

    model: Any


@dataclass(frozen=True)
class _Call:
    """One forward pass as torch ran it: the tensors in, the tensors out (by output name)."""

    inputs: dict[str, torch.Tensor]
    outputs: dict[str, torch.Tensor]
    output_type: type


class OnnxModel:
    """Stands in for a transformers model whose forward pass runs in an onnxruntime session.

    Pipelines read a model's `config`, `dtype` and `device` and call it with keyword
    tensors; this answers with the output class the torch model returned (such as
    `SequenceClassifierOutput`), so their post-processing runs unchanged.
    """

    def __init__(
        self,
        session: Any,
        *,
        torch_model: PreTrainedModel,
        output_type: type,
        weight_bytes: int,
        path: Path | None = None,
    ) -> None:
        self.session = session
        self.path = path
        """The graph file the session runs (None: built elsewhere)."""
        self.config = torch_model.config
        self.dtype: torch.dtype = torch_model.dtype
        self.device: torch.device = torch_model.device
        self.name_or_path: str = torch_model.name_or_path
        self.base_model_prefix: str = torch_model.base_model_prefix
        self.input_names = [node.name for node in session.get_inputs()]
        self.output_names = [node.name for node in session.get_outputs()]
        self.output_type = output_type
        self.weight_bytes = weight_bytes
        self.sequence_inputs: frozenset[str] = frozenset()
        """Inputs whose axis 1 is the token sequence (ids, masks)."""
        self.split_rows = False
        """True when every output is one row per input row (no sequence axis): a padded
        batch may then run as sub-batches of similar lengths, each cut to its own longest."""
        self.run_overhead_tokens = RUN_OVERHEAD_TOKENS

    def __call__(self, **inputs: Any) -> Any:
        return self.forward(**inputs)

    def forward(self, **inputs: Any) -> Any:
        """The model's outputs for these tensors; other keywords (flags) are the graph's own."""
        feed = {name: inputs[name].detach().cpu().numpy() for name in self.input_names}
        mask = feed.get("attention_mask")
        groups = (
            _sub_batches(mask, self.run_overhead_tokens)
            if self.split_rows and mask is not None
            else None
        )
        if groups is None:
            values = self.session.run(self.output_names, feed)
        else:
            values = self._run_in_groups(feed, groups)
        return self.output_type(
            **{
                name: torch.from_numpy(value).to(self.device)
                for name, value in zip(self.output_names, values, strict=True)
            }
        )

    def _run_in_groups(
        self, feed: dict[str, np.ndarray], groups: list[tuple[np.ndarray, int]]
    ) -> list[np.ndarray]:
        """One session run per group of rows, its sequences cut to `length`; rows put back in order."""
        values: list[np.ndarray] = []
        for rows, length in groups:
            part = {
                name: array[rows, :length] if name in self.sequence_inputs else array[rows]
                for name, array in feed.items()
            }
            answers = self.session.run(self.output_names, part)
            if not values:
                batch = len(feed["attention_mask"])
                values = [np.empty((batch, *a.shape[1:]), a.dtype) for a in answers]
            for value, answer in zip(values, answers, strict=True):
                value[rows] = answer
        return values


def _sub_batches(mask: np.ndarray, overhead: int) -> list[tuple[np.ndarray, int]] | None:
    """Rows of a right-padded batch grouped by length, each group with its longest length.

    A padded batch computes every row at the longest row's length. Sorted by length
    and cut where it pays, the same rows cost their own group's longest instead:
    chat-length texts (4 to 24 words) in a batch of 32 carry about 40% padding.
    The cuts minimise tokens computed plus `overhead` tokens per group. None
    when one run of the whole batch is best, or the batch is not padded on the right
    (every row's mask ones, then zeros).
    """
    if mask.ndim != 2 or len(mask) < 2:
        return None
    lengths = mask.sum(axis=1)
    if not np.array_equal(mask != 0, np.arange(mask.shape[1]) < lengths[:, None]):
        return None
    order = np.argsort(lengths, kind="stable")
    ordered = [max(int(length), 1) for length in lengths[order]]
    count = len(ordered)
    best = [0] + [math.inf] * count
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        for start in range(end):
            cost = best[start] + (end - start) * ordered[end - 1] + overhead
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups: list[tuple[np.ndarray, int]] = []
    end = count
    while end:
        start = cut[end]
        groups.append((order[start:end], ordered[end - 1]))
        end = start
    if len(groups) == 1 and groups[0][1] == mask.shape[1]:
        return None
    return groups[::-1]


class _Positional(torch.nn.Module):
    """The model as the exporter wants it: tensors in by position, a tuple of tensors out."""

    def __init__(self, model: torch.nn.Module, inputs: list[str], outputs: list[str]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        answer = self.model(**dict(zip(self.inputs, tensors, strict=True)))
        return tuple(answer[name] for name in self.outputs)


class ExportRefused(Exception):
    """This model stays on torch; the message says why (it is logged once)."""


class NotExportedYet(Exception):
    """No export of this model on disk, and the caller asked not to make one now."""


class OnnxAccelerator:
    """Moves the forward pass of loaded encoder models to onnxruntime, keeping exports on disk."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        device: str,
        threads: int,
        int8: bool = False,
        int8_score_tolerance: float = INT8_SCORE_TOLERANCE,
    ) -> None:
        self.cache_dir = cache_dir
        self.device = device
        self.providers = list(PROVIDERS[device])
        self.threads = threads
        self.int8 = int8
        self.int8_score_tolerance = int8_score_tolerance
        self._lock = threading.Lock()
        self._exports = 0
        self._fallbacks = 0
        self._int8 = 0
        self._int8_fallbacks = 0
        self._refused: dict[str, str] = {}
        self._warned: set[str] = set()
        self._exporting: set[str] = set()

    @classmethod
    def for_device(cls, setting: str, device: str, cache_dir: Path) -> OnnxAccelerator | None:
        """An accelerator when the setting allows it and onnxruntime serves this device, else None.

        `int8` quantizes on the CPU only: onnxruntime's dynamically quantized operators
        have no CUDA kernels, so on a GPU it means the float graph (`auto`).
        """
        if setting == "off" or device not in PROVIDERS:
            return None
        try:
            import onnxruntime
        except ImportError:
            log.warning("onnxruntime does not import; every model runs on torch")
            return None
        if PROVIDERS[device][0] not in onnxruntime.get_available_providers():
            return None
        if setting == "int8" and device != "cpu":
            log.info("HFBOT_ENGINE_ONNX=int8 quantizes on the CPU only; %s serves float", device)
        return cls(
            cache_dir=cache_dir,
            device=device,
            threads=torch.get_num_threads(),
            int8=setting == "int8" and device == "cpu",
        )

    def counts(self) -> OnnxCounts:
        with self._lock:
            return OnnxCounts(
                exports=self._exports,
                fallbacks=self._fallbacks,
                int8=self._int8,
                int8_fallbacks=self._int8_fallbacks,
            )

    def exporting(self, task: str, model_id: str) -> bool:
        """True while this model is being exported: what a first request is waiting for."""
        with self._lock:
            return model_label(task, model_id) in self._exporting

    def accelerate(
        self, task: str, model_id: str, runner: Runner, *, export: bool = True
    ) -> Runner:
        """The runner, its model now served by onnxruntime when its task allows and checks pass.

        Blocking (the pool's loading thread). Never fails: a model that cannot move stays on torch.
        With `export=False` only an export already on disk is used (a second, where exporting
        takes minutes of a small machine's CPU); without one the runner comes back as it was.
        """
        probes = PROBES.get(task)
        if probes is None:
            return runner
        model_runner = cast(ModelRunner, runner)
        label = model_label(task, model_id)
        try:
            model_runner.model = self._onnx_model(task, label, model_runner, probes, export)
        except NotExportedYet:
            pass
        except Exception as error:
            self._fall_back(label, error)
        return runner

    def from_disk(
        self, task: str, model_id: str, without_weights: Callable[[], Runner]
    ) -> Runner | None:
        """The runner `without_weights` builds, served by the export on disk; None where
        there is no export with a record of torch's answers (a first load, or an export
        from an older version) or its session does not give them. The caller then loads
        the model with its weights, as without this.

        Blocking (the pool's loading thread). Never fails.
        """
        probes = PROBES.get(task)
        if probes is None or not any(self.cache_dir.glob(f"*/{RECORD}")):
            return None  # nothing to load from: a first start pays nothing for looking
        label = model_label(task, model_id)
        try:
            runner = cast(ModelRunner, without_weights())
            model = runner.model
            if not isinstance(model, PreTrainedModel):
                return None
            key = cache_key(task, model, _first_inputs(runner, model, probes[0]))
            with self._lock:
                if key in self._refused:
                    return None
            folder = self.cache_dir / key
            if not (folder / TRACED).exists() or not (folder / RECORD).exists():
                return None
            calls, answers = _load_record(folder / RECORD, model.device)
            onnx_model = self._int8_alone(label, folder, runner, calls, probes, answers)
            if onnx_model is None:
                onnx_model = self._checked(label, folder, model, calls)
                if self.int8:
                    onnx_model = self._int8_or_float(
                        label, folder, runner, onnx_model, list(probes), answers
                    )
        except Exception as error:
            log.info("%s: loads with its torch weights (%s)", label, error)
            return None
        runner.model = onnx_model
        return runner

    def _int8_alone(
        self,
        label: str,
        folder: Path,
        runner: ModelRunner,
        calls: list[_Call],
        probes: Iterable[ProbeCall],
        answers: list[list[Any]],
    ) -> OnnxModel | None:
        """The int8 graph on disk where it answers as torch did, checked before any float
        session opens: a float session made first, as its fallback, would hold the float
        weights beside the int8 ones while the model loads. None: not in int8 mode, not
        quantized yet, or it does not answer so (the float path then decides, as on a
        first load)."""
        quantized = folder / QUANTIZED
        if not self.int8 or not quantized.exists():
            return None
        try:
            int8_model = self._int8_as_torch(quantized, runner, probes, answers, calls)
        except Exception as error:
            log.info("%s: its int8 graph is checked beside its float one (%s)", label, error)
            return None
        self._serves_int8(label)
        return int8_model

    def _onnx_model(
        self,
        task: str,
        label: str,
        runner: ModelRunner,
        probes: Iterable[ProbeCall],
        export: bool,
    ) -> OnnxModel:
        model = runner.model
        if not isinstance(model, PreTrainedModel):
            raise ExportRefused(f"{type(model).__name__} is not a transformers model")
        probes = list(probes)
        calls, answers = _record(runner, model, probes)
        key = cache_key(task, model, calls[0].inputs)
        with self._lock:
            refused = self._refused.get(key)
        if refused is not None:
            raise ExportRefused(refused)
        folder = self.cache_dir / key
        if not export and not (folder / TRACED).exists():
            raise NotExportedYet(label)
        try:
            if not (folder / TRACED).exists():
                self._export_once(label, model, calls[0], folder)
            onnx_model = self._checked(label, folder, model, calls)
        except Exception as error:
            with self._lock:
                self._refused[key] = str(error)
            shutil.rmtree(folder, ignore_errors=True)
            raise
        # Kept (or put right) whenever torch ran: the next load then needs no weights.
        _keep_record(label, folder / RECORD, calls, answers)
        if not self.int8:
            return onnx_model
        return self._int8_or_float(label, folder, runner, onnx_model, probes, answers)

    def _int8_or_float(
        self,
        label: str,
        folder: Path,
        runner: ModelRunner,
        float_model: OnnxModel,
        probes: list[ProbeCall],
        answers: list[list[Any]],
    ) -> OnnxModel:
        """The quantized graph where the probes, run through the runner, answer as on torch;
        else the float graph (logged once, counted)."""
        try:
            quantized = folder / QUANTIZED
            if not quantized.exists():
                assert float_model.path is not None
                _quantize(float_model.path, quantized)
            int8_model = self._int8_as_torch(quantized, runner, probes, answers, float_model)
        except Exception as error:
            with self._lock:
                self._int8_fallbacks += 1
                first = f"int8 {label}" not in self._warned
                self._warned.add(f"int8 {label}")
            if first:
                log.warning("%s serves its float ONNX graph, not int8 (%s)", label, error)
            return float_model
        self._serves_int8(label)
        return int8_model

    def _serves_int8(self, label: str) -> None:
        with self._lock:
            self._int8 += 1
        log.info("%s serves its int8 ONNX graph", label)

    def _int8_as_torch(
        self,
        quantized: Path,
        runner: ModelRunner,
        probes: Iterable[ProbeCall],
        answers: list[list[Any]],
        like: OnnxModel | list[_Call],
    ) -> OnnxModel:
        """The quantized graph, raising unless the probes through the runner answer as on
        torch; its outputs and batches as the float graph's (`like`), or as torch's
        recorded calls show them where no float session is open."""
        output_type = like.output_type if isinstance(like, OnnxModel) else like[0].output_type
        int8_model = OnnxModel(
            self._session(quantized),
            torch_model=runner.model,
            output_type=output_type,
            weight_bytes=_graph_bytes(quantized),
            path=quantized,
        )
        if isinstance(like, OnnxModel):
            int8_model.sequence_inputs = like.sequence_inputs
            int8_model.split_rows = like.split_rows
        else:
            _lay_out(int8_model, like)
        previous, runner.model = runner.model, int8_model
        try:
            for probe, expected in zip(probes, answers, strict=True):
                got = runner(list(probe.inputs), batch_size=len(probe.inputs), **probe.params)
                difference = answers_differ(expected, got, self.int8_score_tolerance)
                if difference is not None:
                    raise ExportRefused(f"its int8 graph answers unlike torch: {difference}")
        finally:
            runner.model = previous
        return int8_model

    def _checked(
        self, label: str, folder: Path, model: PreTrainedModel, calls: list[_Call]
    ) -> OnnxModel:
        """The optimized graph when it matches torch, else the graph as traced (which must)."""
        optimized = folder / OPTIMIZED
        if optimized.exists():
            try:
                return self._served(optimized, folder, model, calls)
            except Exception as error:
                log.info("%s: its fused ONNX graph is not used (%s)", label, error)
        return self._served(folder / TRACED, folder, model, calls)

    def _served(
        self, path: Path, folder: Path, model: PreTrainedModel, calls: list[_Call]
    ) -> OnnxModel:
        onnx_model = OnnxModel(
            self._session(path),
            torch_model=model,
            output_type=calls[0].output_type,
            weight_bytes=_graph_bytes(path),
            path=path,
        )
        _lay_out(onnx_model, calls)
        _check(onnx_model, calls)
        if onnx_model.split_rows:
            # Every length its own run: the probes through the sub-batch path, whose rows
            # must answer as they do padded (they do, wherever the mask hides padding).
            onnx_model.run_overhead_tokens = 0
            try:
                _check(onnx_model, calls)
            except ExportRefused as error:
                log.info("%s: batches run whole, cut by length they differ (%s)", path, error)
                onnx_model.split_rows = False
            finally:
                onnx_model.run_overhead_tokens = RUN_OVERHEAD_TOKENS
        return onnx_model

    def _export_once(self, label: str, model: PreTrainedModel, call: _Call, folder: Path) -> None:
        """Export into a folder of our own, then move it into place whole (another process may race)."""
        with self._lock:
            self._exporting.add(label)
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
            try:
                _export(model, call, scratch / TRACED)
                _optimize(label, model, scratch / TRACED, scratch / OPTIMIZED)
                os.replace(scratch, folder)
            except OSError:
                if not (folder / TRACED).exists():
                    raise
                return  # another process put the same export in place first
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        finally:
            with self._lock:
                self._exporting.discard(label)
        with self._lock:
            self._exports += 1
        log.info("exported %s to ONNX", label)

    def _session(self, path: Path) -> Any:
        """A session on this pool's device, with torch's thread count.

        Workers do not spin between runs: between two forward passes the pool's
        thread tokenizes and post-processes on these same cores. No memory arena:
        it would keep the largest batch's activations (70 MiB for 32 texts on a
        BERT-base) for good, at no measurable gain in speed here.
        """
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_cpu_mem_arena = False
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return onnxruntime.InferenceSession(str(path), options, providers=self.providers)

    def _fall_back(self, label: str, error: Exception) -> None:
        with self._lock:
            self._fallbacks += 1
            first = label not in self._warned
            self._warned.add(label)
        if first:
            log.warning(
                "%s runs on torch: its ONNX export failed or did not match (%s)", label, error
            )


def _record(
    runner: ModelRunner, model: torch.nn.Module, probes: Iterable[ProbeCall]
) -> tuple[list[_Call], list[list[Any]]]:
    """Every forward pass of the probes through the runner on torch, largest batch first;
    and the runner's answer to each probe, in order."""
    calls: list[_Call] = []
    answers: list[list[Any]] = []

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if args:
            raise ExportRefused("the runner calls its model with positional inputs")
        inputs = {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
        outputs = {k: v for k, v in output.items() if isinstance(v, torch.Tensor)}
        calls.append(_Call(inputs, outputs, type(output)))

    handle = model.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.inference_mode():
            for probe in probes:
                answers.append(
                    runner(list(probe.inputs), batch_size=len(probe.inputs), **probe.params)
                )
    finally:
        handle.remove()
    if not calls:
        raise ExportRefused("the probes never reached the model")
    return sorted(calls, key=lambda call: -_batch(call)), answers


def _batch(call: _Call) -> int:
    return next(iter(call.inputs.values())).shape[0]


class _Reached(Exception):
    """Raised by `_first_inputs`'s hook: the tensors a runner hands its model, caught before it runs."""

    def __init__(self, inputs: dict[str, torch.Tensor]) -> None:
        super().__init__("the model was reached")
        self.inputs = inputs


def _first_inputs(
    runner: ModelRunner, model: torch.nn.Module, probe: ProbeCall
) -> dict[str, torch.Tensor]:
    """The tensors the runner's first forward call on a probe hands its model, which never runs."""

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        raise _Reached({k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)})

    handle = model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        runner(list(probe.inputs), batch_size=len(probe.inputs), **probe.params)
    except _Reached as reached:
        return reached.inputs
    finally:
        handle.remove()
    raise ExportRefused("the probes never reached the model")


def _keep_record(label: str, path: Path, calls: list[_Call], answers: list[list[Any]]) -> None:
    """Keep torch's calls and answers on the probes at `path`: a later load checks against them.

    One numpy archive read without pickle: each tensor an array, the rest (names,
    dtypes, output classes, answers) JSON inside it. Written beside and moved into
    place whole. A record that cannot be written (an answer JSON does not hold) is
    only a later load that needs torch's weights, so it is logged, not raised.
    """
    arrays: dict[str, np.ndarray] = {}
    layout: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        entry: dict[str, Any] = {
            "output_type": f"{call.output_type.__module__}:{call.output_type.__qualname__}"
        }
        for side, tensors in (("inputs", call.inputs), ("outputs", call.outputs)):
            entry[side] = {}
            for name, tensor in tensors.items():
                arrays[f"{index}.{side}.{name}"] = _array(tensor)
                entry[side][name] = str(tensor.dtype).removeprefix("torch.")
        layout.append(entry)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        meta = json.dumps({"calls": layout, "answers": answers}, default=_plain)
        arrays["meta"] = np.frombuffer(meta.encode(), dtype=np.uint8)
        with scratch.open("wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
        os.replace(scratch, path)
    except (OSError, TypeError, ValueError) as error:
        log.info("%s: torch's answers on its probes are not kept (%s)", label, error)
        scratch.unlink(missing_ok=True)


def _load_record(path: Path, device: torch.device) -> tuple[list[_Call], list[list[Any]]]:
    """The calls and answers `_keep_record` kept, tensors on `device`."""
    calls: list[_Call] = []
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes())
        for index, entry in enumerate(meta["calls"]):
            tensors = {
                side: {
                    name: torch.from_numpy(archive[f"{index}.{side}.{name}"]).to(
                        device=device, dtype=_dtype(dtype)
                    )
                    for name, dtype in entry[side].items()
                }
                for side in ("inputs", "outputs")
            }
            output_type = _output_type(entry["output_type"])
            calls.append(_Call(tensors["inputs"], tensors["outputs"], output_type))
    return calls, meta["answers"]


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A tensor as numpy holds it: bfloat16, which numpy lacks, widened to float32."""
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def _plain(value: Any) -> Any:
    """numpy's scalars and arrays in an answer as JSON's numbers and lists."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not kept in a record")


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ExportRefused(f"the record names an unknown dtype {name!r}")
    return dtype


def _output_type(name: str) -> type:
    """The transformers output class a record names; nothing outside transformers is imported."""
    module, _, qualname = name.partition(":")
    if module != "transformers" and not module.startswith("transformers."):
        raise ExportRefused(f"the record names {name}, not a transformers output")
    found = getattr(importlib.import_module(module), qualname, None)
    if not isinstance(found, type) or not issubclass(found, ModelOutput):
        raise ExportRefused(f"the record names {name}, not a transformers output")
    return found


def cache_key(task: str, model: PreTrainedModel, inputs: Mapping[str, torch.Tensor]) -> str:
    """What an export depends on: the model's files (or Hub revision), its class and inputs, versions."""
    digest = hashlib.sha256()
    parts = [
        EXPORT_FORMAT,
        task,
        type(model).__name__,
        str(next(model.parameters()).dtype),
        model.device.type,
        torch.__version__,
        _onnxruntime_version(),
        str(OPSET),
        # By name: pipelines hand their inputs in an order that can change between
        # processes (a set of names on the way), and a key must not.
        *(f"{name}:{tensor.dtype}:{tensor.dim()}" for name, tensor in sorted(inputs.items())),
    ]
    digest.update("\n".join(parts).encode())
    folder = Path(model.name_or_path)
    files = (
        sorted(p for pattern in _MODEL_FILES for p in folder.glob(pattern))
        if folder.is_dir()
        else []
    )
    revision = getattr(model.config, "_commit_hash", None)
    if files:
        for file in files:
            digest.update(file.name.encode())
            stat = file.stat()
            digest.update(_file_digest(file, stat.st_size, stat.st_mtime_ns))
    elif revision:
        digest.update(f"{model.name_or_path}@{revision}".encode())
    else:
        raise ExportRefused("neither model files nor a Hub revision to key its export by")
    return digest.hexdigest()[:32]


@functools.lru_cache(maxsize=64)
def _file_digest(path: Path, size: int, modified_ns: int) -> bytes:
    """A file's sha256, read once per size and modification time: a load can look for its
    export on disk and then, without one, load and look again, with gigabytes to hash."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


# torch.onnx's TorchScript exporter keeps its state in module globals: two exports at once
# in one process (two pools there: replicas in one test process, a bench's bots) fail with
# "GLOBALS.in_onnx_export must be False" and leave those models on torch. One pool
# exports on its one loading thread; pools do not know of each other, so exports take
# turns here.
_EXPORTING = threading.Lock()


def _export(model: torch.nn.Module, call: _Call, path: Path) -> None:
    """Trace the model on one recorded call into an ONNX file with dynamic batch and lengths.

    The TorchScript exporter (`dynamo=False`), because on BERT-family and ViT models it
    gives the same graph as the torch.export-based one for a fraction of the time
    (5 s against 12 s for a 6-layer BERT-base on 2 cores) and needs no onnxscript
    package. Tracing records Python-level decisions as constants; the probes catch
    any that would change answers. Every axis but the batch is fixed unless it is a
    sequence (axis 1 of an integer tensor: token ids and masks).

    Traced with transformers' eager attention (matmul, mask, softmax, matmul), whatever
    the model runs with: onnxruntime's optimizer fuses that pattern into one Attention
    operator, and does not recognise the graph scaled_dot_product_attention leaves.
    """
    inputs = list(call.inputs)
    outputs = list(call.outputs)
    dynamic_axes: dict[str, dict[int, str]] = {}
    for name in _sequence_inputs(call):
        dynamic_axes[name] = {0: "batch", 1: "sequence"}
    for name in call.inputs:
        dynamic_axes.setdefault(name, {0: "batch"})
    for name, tensor in call.outputs.items():
        dynamic_axes[name] = {axis: f"{name}_{axis}" for axis in range(tensor.dim())}
    wrapper = _Positional(model, inputs, outputs).eval()
    with _EXPORTING, torch.no_grad(), _eager_attention(model):
        torch.onnx.export(
            wrapper,
            tuple(call.inputs.values()),
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
        )
    _weights_beside(path)


def _weights_beside(path: Path) -> None:
    """Rewrite a graph with its weights in `<graph>.data` beside it, for onnxruntime to map."""
    import onnx

    graph = onnx.load(str(path))
    onnx.save_model(
        graph,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=path.name + WEIGHTS_SUFFIX,
        size_threshold=1024,
    )


def _graph_bytes(path: Path) -> int:
    """A graph's size on disk, its weights file included."""
    weights = path.with_name(path.name + WEIGHTS_SUFFIX)
    return path.stat().st_size + (weights.stat().st_size if weights.exists() else 0)


def _quantize(source: Path, target: Path) -> None:
    """Write `target`: `source` with int8 weights (onnxruntime's dynamic quantization).

    Written beside the target and moved into place whole, so a crash or a second
    process never leaves half a graph. Fused operators (Attention) are quantized as
    they are; an operator the quantizer cannot type is taken to be float.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scratch = Path(tempfile.mkdtemp(prefix=".int8-", dir=target.parent))
    advice = _QuantizerAdvice()
    logging.getLogger().addFilter(advice)
    try:
        quantize_dynamic(
            source,
            scratch / target.name,
            weight_type=QuantType.QInt8,
            use_external_data_format=True,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        graph, weights = scratch / target.name, scratch / (target.name + WEIGHTS_SUFFIX)
        if weights.exists():
            os.replace(weights, target.parent / weights.name)
        os.replace(graph, target)
    finally:
        logging.getLogger().removeFilter(advice)
        shutil.rmtree(scratch, ignore_errors=True)


class _QuantizerAdvice(logging.Filter):
    """Drops the quantizer's advice to pre-process the graph, which it logs to the root logger
    on every call: the graph it gets is already fused and shape-checked by the float path."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _eager_attention(model: torch.nn.Module) -> Iterator[None]:
    """The model on transformers' eager attention for a while, when it can switch."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    switch = getattr(model, "set_attn_implementation", None)
    if previous in (None, "eager") or switch is None:
        yield
        return
    try:
        switch("eager")
    except Exception:  # a model without eager attention exports as it is
        yield
        return
    try:
        yield
    finally:
        switch(previous)


def _optimize(label: str, model: PreTrainedModel, traced: Path, optimized: Path) -> None:
    """Write `optimized`: the traced graph with onnxruntime's transformer fusions.

    Attention, embedding + LayerNorm, residual add + LayerNorm and bias + GELU each
    become one operator. Python-level fusions only (opt_level=0): the session applies
    its own graph optimizations on every load. Nothing is written when they fuse
    nothing or fail; the traced graph is then served as it is.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    config = model.config
    try:
        fused = optimize_model(
            str(traced),
            model_type=_FUSION_TYPES.get(config.model_type, "bert"),
            num_heads=int(getattr(config, "num_attention_heads", 0) or 0),
            hidden_size=int(getattr(config, "hidden_size", 0) or 0),
            opt_level=0,
        )
        statistics = {op: n for op, n in fused.get_fused_operator_statistics().items() if n}
        if not statistics:
            log.info("%s: onnxruntime fuses nothing in its graph", label)
            return
        fused.save_model_to_file(str(optimized), use_external_data_format=True)
    except Exception as error:
        log.info("%s: onnxruntime's transformer optimizer failed (%s)", label, error)
        optimized.unlink(missing_ok=True)
        return
    log.info("%s: fused %s", label, ", ".join(f"{n} {op}" for op, n in statistics.items()))


def _lay_out(onnx_model: OnnxModel, calls: list[_Call]) -> None:
    """Which inputs are token sequences, and whether batches may run cut by length."""
    onnx_model.sequence_inputs = frozenset(_sequence_inputs(calls[0]))
    onnx_model.split_rows = "attention_mask" in onnx_model.input_names and _per_row(calls)


def _sequence_inputs(call: _Call) -> list[str]:
    """The inputs with a token axis (axis 1 of an integer tensor: ids, masks, type ids)."""
    return [
        name
        for name, tensor in call.inputs.items()
        if tensor.dim() > 1 and not tensor.is_floating_point()
    ]


def _per_row(calls: list[_Call]) -> bool:
    """True when no output has a sequence axis: the recorded calls, of different lengths,
    give outputs that differ only in their batch axis."""
    sequences = {
        tuple(call.inputs[name].shape[1] for name in _sequence_inputs(call)) for call in calls
    }
    if len(sequences) < 2 or not _sequence_inputs(calls[0]):
        return False
    shapes = {
        tuple((name, tuple(tensor.shape[1:])) for name, tensor in call.outputs.items())
        for call in calls
    }
    return len(shapes) == 1


def _onnxruntime_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


_SCORE_KEYS = frozenset({"score", "scores"})


def answers_differ(expected: Any, got: Any, tolerance: float, where: str = "answer") -> str | None:
    """Where two runner answers differ as a person would notice, or None when they agree.

    Scores (`score`, `scores`) may differ by `tolerance`; everything else (labels,
    tokens, words, spans, the order of a ranking) must be equal.
    """
    if isinstance(expected, Mapping):
        if not isinstance(got, Mapping) or set(expected) != set(got):
            return f"{where} has other keys"
        for key, value in expected.items():
            inner = f"{where}.{key}"
            if key in _SCORE_KEYS:
                difference = _score_difference(value, got[key])
                if difference is None or difference > tolerance:
                    shown = "a different shape" if difference is None else f"{difference:.2g}"
                    return f"{inner} differs by {shown}"
            else:
                found = answers_differ(value, got[key], tolerance, inner)
                if found is not None:
                    return found
        return None
    if isinstance(expected, list | tuple):
        if not isinstance(got, list | tuple) or len(expected) != len(got):
            return f"{where} has another length"
        for index, (mine, theirs) in enumerate(zip(expected, got, strict=True)):
            found = answers_differ(mine, theirs, tolerance, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    if isinstance(expected, float) and isinstance(got, float):
        return None if abs(expected - got) <= tolerance else f"{where} differs"
    return None if expected == got else f"{where} is {got!r}, torch gives {expected!r}"


def _score_difference(expected: Any, got: Any) -> float | None:
    """The largest difference between two scores or lists of scores (None: shapes differ)."""
    mine = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    theirs = np.atleast_1d(np.asarray(got, dtype=np.float64))
    if mine.shape != theirs.shape:
        return None
    return float(np.abs(mine - theirs).max()) if mine.size else 0.0


def _check(onnx_model: OnnxModel, calls: Iterable[_Call]) -> None:
    """Raise unless every recorded forward pass gives torch's outputs within `TOLERANCE`."""
    for call in calls:
        answer = onnx_model(**call.inputs)
        for name, expected in call.outputs.items():
            got = answer[name]
            if got.shape != expected.shape:
                raise ExportRefused(
                    f"{name} has shape {tuple(got.shape)}, torch gives {tuple(expected.shape)}"
                )
            difference = float((got.float() - expected.float()).abs().max())
            if not math.isfinite(difference) or difference > TOLERANCE:
                raise ExportRefused(f"{name} differs from torch by {difference:.2g}")


def default_cache_dir() -> Path:
    """Beside the Hub cache, so a deployment that keeps downloaded models keeps their exports."""
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "hfbot-onnx"
