"""PipelinePool: the one door through which the bot runs models.

`await pool.submit(task, model_id, inputs, params)` returns the typed result
(`bot.tasks.outputs`) the task's reader makes of what the pipeline returns. Behind it, each (task, model) has an engine that owns
its queue: a `MicroBatcher`, or for text generation a `GenerationPath`
(continuous batching, micro-batching what it cannot serve), as the task
registry's row says; `_new_engine` is the one place that reads it.
Models are shared by all engines through one `ModelCache` (lazy loads on a
thread of their own, kept by a memory budget) and batches run in the pool's
executor, so the event loop never runs a model and a load never holds up
another model's batches.
Nothing here knows about Telegram.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, suppress
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch

from bot.config import Settings
from bot.engine.fair_turns import ANONYMOUS, Caller
from bot.engine.generation_path import GenerationPath
from bot.engine.metrics import PoolMetrics, model_label
from bot.engine.microbatch import MicroBatcher, ModelSeat
from bot.engine.model_cache import (
    Loader,
    ModelCache,
    ModelKey,
    free_memory,
    resident_bytes,
    resolve_budget,
    weights_on_disk,
)
from bot.engine.model_input import ModelInput
from bot.engine.onnx_export import PROBES, OnnxAccelerator, OnnxModel, default_cache_dir
from bot.engine.remote import RemoteEngine, RemoteEngines
from bot.engine.runners import Runner, load_runner, resolve_device, resolve_dtype
from bot.errors import PoolBusy, PoolClosed, RequestTimeout
from bot.tasks import TASKS, EngineKind, Output

TextCallback = Callable[[str], None]

# Which engine serves each pipeline task, read off the task registry.
ENGINE_KINDS: dict[str, EngineKind] = {spec.pipeline_task: spec.engine for spec in TASKS.values()}
# How each pipeline task's output is read into its typed result.
READERS: dict[str, Callable[[object], Output]] = {
    spec.pipeline_task: spec.result.read for spec in TASKS.values()
}
# Tasks whose row bounds a batch below the pool's own `pool_max_batch_size`.
BATCH_LIMITS: dict[str, int] = {
    spec.pipeline_task: spec.max_batch_size for spec in TASKS.values() if spec.max_batch_size
}


class Engine(Protocol):
    """How one (task, model) serves requests; `PipelinePool.submit` only needs this."""

    @property
    def queue_depth(self) -> int: ...

    @property
    def up(self) -> bool:
        """Whether this engine can serve a request now (a crashed generation thread cannot)."""
        ...

    async def submit(
        self,
        inputs: Any,
        params: Mapping[str, Any],
        *,
        on_text: TextCallback | None = None,
        caller: Caller = ANONYMOUS,
    ) -> Any: ...

    async def close(self) -> None: ...


def default_loader(
    settings: Settings, onnx: OnnxAccelerator | None = None, *, weights: bool = True
) -> Loader:
    """`load_runner` bound to the device, dtype and Hub token from settings.

    With an accelerator, each runner it loads is handed to it before it is
    returned (the pool does this on its loading thread, after the torch runner
    already serves).
    """
    device = resolve_device(settings.pool_device)
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    load = partial(
        load_runner,
        device=device,
        dtype=resolve_dtype(settings.pool_dtype, device),
        token=token,
        vision_image_edge=settings.vision_image_edge,
        weights=weights,
    )
    if onnx is None:
        return load

    def load_accelerated(task: str, model_id: str) -> Runner:
        runner = onnx.accelerate(task, model_id, load(task, model_id))
        if isinstance(getattr(runner, "model", None), OnnxModel):
            free_memory()  # the torch weights it replaced go back now, not at the next eviction
        return runner

    return load_accelerated


def onnx_accelerator(settings: Settings) -> OnnxAccelerator | None:
    """The ONNX path this pool's settings and device allow, if any (`HFBOT_ENGINE_ONNX`)."""
    return OnnxAccelerator.for_device(
        settings.engine_onnx,
        resolve_device(settings.pool_device),
        settings.engine_onnx_cache_dir or default_cache_dir(),
    )


_CGROUP_CPU_QUOTAS = (
    (Path("/sys/fs/cgroup/cpu.max"), None),  # cgroup v2: "<quota> <period>" or "max <period>"
    (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")),
)


def usable_cores(quotas: tuple[tuple[Path, Path | None], ...] = _CGROUP_CPU_QUOTAS) -> int:
    """The cores this process may run on: its CPU affinity, capped by its container's quota.

    Docker's `--cpus` (compose's `cpus:`) sets a CPU quota and leaves the affinity at
    every core of the host, so the affinity alone would count the host's cores.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    for quota_file, period_file in quotas:
        with suppress(OSError, ValueError):
            quota, _, period = quota_file.read_text().partition(" ")
            if period_file is not None:
                period = period_file.read_text()
            if quota.strip() not in ("max", "-1"):
                return max(1, min(cores, math.ceil(int(quota) / int(period))))
    return cores


def torch_threads(setting: int | None) -> int:
    """torch's intra-op threads: the setting, or every usable core but one.

    The spare core is the event loop's (Telegram, the database, every answer's
    formatting) and the generation engine's thread: with one thread per core,
    torch's workers and those two took turns on the same cores: the soak's mix
    (2,400 requests at 20 a second, 2 cores, torch) answered at p50 1.07 s with two
    threads against 0.24 s with one, while one busy model alone (bench_bot's
    private chats) lost 5%.
    """
    return setting or max(1, usable_cores() - 1)


def _set_torch_threads(threads: int) -> None:
    """torch's intra-op pool is process-wide: set it once, from the pool's settings."""
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


class PipelinePool:
    """Runs pipelines for the bot: batched, bounded, with backpressure and timeouts."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        loader: Loader | None = None,
        executor: Executor | None = None,
        measure_memory: Callable[[], int] = resident_bytes,
    ) -> None:
        """`measure_memory` reads the process's memory (resident bytes) around loads and
        first batches; tests give their own to make footprints exact."""
        settings = settings or Settings()
        self.settings = settings
        _set_torch_threads(torch_threads(settings.pool_torch_threads))
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=settings.pool_executor_workers, thread_name_prefix="hfbot-pool"
        )
        self._engines: dict[ModelKey, Engine] = {}
        self._sources: dict[ModelKey, str] = {}
        # Models from a loader of the caller's own (tests, benchmarks) stay as it made them.
        self.onnx = onnx_accelerator(settings) if loader is None else None
        self._loader = loader or default_loader(settings)
        self._accelerated = default_loader(settings, self.onnx) if self.onnx else None
        self._without_weights = default_loader(settings, weights=False)
        self.remote = RemoteEngines(settings.engines, health_every_s=settings.health_engine_check_s)
        self.metrics = PoolMetrics(
            queue_depths=self._queue_depths,
            engines=self.remote.stats,
            engines_up=self._engines_up,
            accepting=lambda: not self._closed,
        )
        if self.onnx is not None:
            self.metrics.onnx = self.onnx.counts
        self._models = ModelCache(
            self._load,
            memory_budget_bytes=resolve_budget(
                settings.pool_memory_budget_mb, settings.pool_memory_share
            ),
            max_models=settings.pool_max_loaded_models,
            metrics=self.metrics,
            estimate=self._estimate,
            on_evict=self._model_evicted,
            measure=measure_memory,
            upgrade=self._upgrade if self._accelerated is not None else None,
            upgrade_quiet_s=settings.engine_onnx_quiet_s,
            upgrade_wait_s=settings.engine_onnx_wait_s,
        )
        self._background: set[asyncio.Task[None]] = set()
        self.metrics.loaded = self._models.loaded
        self.metrics.model_bytes = self._models.used_bytes
        self.metrics.memory_budget_bytes = lambda: self._models.memory_budget_bytes
        self._closed = False

    async def submit(
        self,
        task: str,
        model_id: str,
        inputs: ModelInput,
        params: Mapping[str, Any] | None = None,
        *,
        on_text: TextCallback | None = None,
        source: str | None = None,
        caller: Caller = ANONYMOUS,
    ) -> Output:
        """The typed result for `inputs`, once a batch including it has run.

        `model_id` names the model (queues, metrics); `source` is where to load it
        from when that differs (the folder of the vetted revision); `caller` says whose
        request it is (owners take turns) and who hears its place in line.

        Raises PoolBusy when this model's queue is full, RequestTimeout after
        `pool_request_timeout_s`, PoolClosed once the pool is closing, and
        ModelLoadFailed when the model cannot be loaded. Cancelling the caller
        withdraws the request if it has not started.
        """
        if self._closed:
            raise PoolClosed(task=task, model=model_id)
        if source is not None:
            self._sources[(task, model_id)] = source
        engine = self._engine(task, model_id)
        self.metrics.requests += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.settings.pool_request_timeout_s):
                result = await engine.submit(inputs, params or {}, on_text=on_text, caller=caller)
        except TimeoutError:
            self.metrics.timed_out += 1
            raise RequestTimeout(
                task=task, model=model_id, seconds=self.settings.pool_request_timeout_s
            ) from None
        except asyncio.CancelledError:
            self.metrics.cancelled += 1
            raise
        except PoolBusy:
            self.metrics.rejected_busy += 1
            raise
        except Exception:
            self.metrics.failed += 1
            raise
        self.metrics.completed += 1
        self.metrics.record_latency(time.perf_counter() - started)
        return READERS[task](result)

    async def close(self) -> None:
        """Stop taking requests, answer every queued one, let running batches end, free models."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(engine.close() for engine in self._engines.values()))
        await self._models.close()
        if self._owns_executor:
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> PipelinePool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def lease(self, task: str, model_id: str) -> AbstractAsyncContextManager[Runner]:
        """Hold a loaded model (loading it first if needed); it is not evicted until released."""
        return self._models.lease(task, model_id)

    def engine(self, task: str, model_id: str) -> Engine | None:
        """The engine serving this (task, model), once a request has created it."""
        return self._engines.get((task, model_id))

    def loaded_models(self) -> tuple[str, ...]:
        """`task:model_id` of each loaded model, least recently used first."""
        return self._models.loaded()

    def _engine(self, task: str, model_id: str) -> Engine:
        key = (task, model_id)
        engine = self._engines.get(key)
        if engine is None:
            engine = self._engines[key] = self._new_engine(task, model_id)
        return engine

    async def upgrades_done(self) -> None:
        """Wait until the ONNX exports under way have taken over (or been given up)."""
        await self._models.upgrades_done()

    def model_ids(self) -> frozenset[str]:
        """Every model loaded or loading now, by id: what must stay on disk."""
        return frozenset(model_id for _, model_id in self._models.keys())

    def _load(self, task: str, model_id: str) -> Runner:
        """Blocking (loading thread): the model from where its last request said it lives,
        on ONNX Runtime at once when an export of it is already on disk (after a restart):
        without reading its torch weights where the export kept torch's answers."""
        source = self._sources.get((task, model_id), model_id)
        if self.onnx is not None and task in PROBES:
            served = self.onnx.from_disk(task, source, partial(self._without_weights, task, source))
            if served is not None:
                free_memory()  # the empty layers it was built around: on CUDA, held in reserve
                return served
        runner = self._loader(task, source)
        if self.onnx is None:
            return runner
        runner = self.onnx.accelerate(task, source, runner, export=False)
        if isinstance(getattr(runner, "model", None), OnnxModel):
            free_memory()  # the torch weights the probes ran on go back now
        return runner

    def _upgrade(self, task: str, model_id: str) -> Runner | None:
        """Blocking (loading thread): the model again, on ONNX Runtime, or None where its task
        has no ONNX path or its export failed (it stays on torch)."""
        if self._accelerated is None or task not in PROBES:
            return None
        runner = self._accelerated(task, self._sources.get((task, model_id), model_id))
        return runner if isinstance(getattr(runner, "model", None), OnnxModel) else None

    def _estimate(self, task: str, model_id: str) -> int | None:
        """Blocking (loading thread): the weights on disk, the model's size before it loads."""
        return weights_on_disk(self._sources.get((task, model_id), model_id))

    def memory(self) -> tuple[int, int | None]:
        """Bytes the loaded models were measured to use, and the budget (None: no limit)."""
        return self._models.used_bytes(), self._models.memory_budget_bytes

    def _new_engine(self, task: str, model_id: str) -> Engine:
        """The engine the registry names for this pipeline task (micro-batching when none);
        a model named `<engine>:<model>` is served by that remote engine."""
        remote = self.settings.remote_model(model_id)
        if remote is not None:
            return RemoteEngine(task, self.remote, *remote)
        batcher = MicroBatcher(
            ModelSeat(task, model_id, self._models, self._executor),
            metrics=self.metrics,
            max_batch_size=min(
                self.settings.pool_max_batch_size,
                BATCH_LIMITS.get(task, self.settings.pool_max_batch_size),
            ),
            max_wait_s=self.settings.pool_max_wait_ms / 1000,
            queue_size=self.settings.pool_queue_size,
        )
        if (
            ENGINE_KINDS.get(task) != "continuous"
            or self.settings.generation_engine != "continuous"
        ):
            return batcher
        return GenerationPath(
            batcher,
            max_queue=self.settings.pool_queue_size,
            max_running=self.settings.generation_running_limit,
            kv_cache_tokens=self.settings.generation_kv_cache_tokens,
        )

    def _model_evicted(self, key: ModelKey) -> None:
        """Engines that keep a model beyond a batch (continuous batching) let it go too."""
        engine = self._engines.get(key)
        if isinstance(engine, GenerationPath):
            task = asyncio.get_running_loop().create_task(engine.model_evicted())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _queue_depths(self) -> dict[str, int]:
        return {model_label(*key): engine.queue_depth for key, engine in self._engines.items()}

    def _engines_up(self) -> dict[str, bool]:
        return {model_label(*key): engine.up for key, engine in self._engines.items()}
