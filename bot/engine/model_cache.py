"""The loaded models of one pool: lazy loads, one load per model, LRU eviction.

A model is loaded the first time a request needs it, in the pool's executor so
the event loop never waits on disk. Everyone asking for a model that is still
loading waits on that same load; a failed load is reported to each of them and
forgotten, so a later request tries again. Models are lent out with `lease()`;
only a model nobody holds is ever evicted, least recently used first, when the
count or the memory budget is exceeded.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import torch

from bot.engine.metrics import PoolMetrics, model_label
from bot.engine.onnx_export import OnnxModel
from bot.engine.runners import Runner
from bot.errors import ModelLoadFailed

log = logging.getLogger(__name__)

Loader = Callable[[str, str], Runner]
"""Blocking `(task, model_id) -> Runner`; the pool calls it in its executor."""

ModelKey = tuple[str, str]


@dataclass(eq=False)
class _Entry:
    key: ModelKey
    loading: asyncio.Task[Runner] = field(init=False)
    runner: Runner | None = None
    size_bytes: int = 0
    in_use: int = 0


def runner_size_bytes(runner: Runner) -> int:
    """Bytes of the runner's weights, in torch or in onnxruntime; 0 for test fakes."""
    model = getattr(runner, "model", None)
    if isinstance(model, OnnxModel):
        return model.weight_bytes
    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def free_memory() -> None:
    """Give an evicted model's memory back: collect cycles, empty CUDA's cache, trim malloc.

    Without the trim, glibc keeps freed weights in the heap and the process's
    RSS never shrinks, which is what an operator watches.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def _retrieve_exception(task: asyncio.Task[Runner]) -> None:
    """Each waiter gets the load's error; this keeps asyncio from also logging it as lost."""
    if not task.cancelled():
        task.exception()


class ModelCache:
    """At most `max_models` runners (and `memory_budget_bytes` of weights, when set)."""

    def __init__(
        self,
        loader: Loader,
        executor: Executor,
        *,
        max_models: int,
        memory_budget_bytes: int | None,
        metrics: PoolMetrics,
        on_evict: Callable[[ModelKey], None] | None = None,
    ) -> None:
        self._loader = loader
        self._executor = executor
        self._max_models = max_models
        self._budget = memory_budget_bytes
        self._metrics = metrics
        self._on_evict = on_evict
        self._entries: OrderedDict[ModelKey, _Entry] = OrderedDict()
        self._background: set[asyncio.Future[None]] = set()

    def keys(self) -> tuple[ModelKey, ...]:
        """(task, model id) of every model loaded or loading."""
        return tuple(self._entries)

    def loaded(self) -> tuple[str, ...]:
        """Labels of loaded models, least recently used first."""
        return tuple(model_label(*e.key) for e in self._entries.values() if e.runner is not None)

    @asynccontextmanager
    async def lease(self, task: str, model_id: str) -> AsyncIterator[Runner]:
        """Hold a loaded runner: it cannot be evicted until the block ends."""
        entry, runner = await self._acquire((task, model_id))
        entry.in_use += 1
        try:
            yield runner
        finally:
            entry.in_use -= 1
            if entry.key in self._entries:
                self._entries.move_to_end(entry.key)
            if self._evict_idle(keep=None):
                self._free_in_background()

    async def _acquire(self, key: ModelKey) -> tuple[_Entry, Runner]:
        """The loaded entry; loops because a model may be evicted between its load and us."""
        while True:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._start_load(key)
            if entry.runner is not None:
                self._entries.move_to_end(key)
                return entry, entry.runner
            await asyncio.shield(entry.loading)

    def _start_load(self, key: ModelKey) -> _Entry:
        entry = _Entry(key)
        self._entries[key] = entry
        evicted = self._evict_idle(keep=entry)
        entry.loading = asyncio.get_running_loop().create_task(self._load(entry, evicted))
        entry.loading.add_done_callback(_retrieve_exception)
        return entry

    async def _load(self, entry: _Entry, free_first: bool) -> Runner:
        task, model_id = entry.key
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            runner = await loop.run_in_executor(
                self._executor, self._free_then_load, entry.key, free_first
            )
        except Exception as error:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
            self._metrics.load_failures += 1
            log.warning("loading %s for %s failed: %s", model_id, task, error)
            raise ModelLoadFailed(task=task, model=model_id, reason=str(error)) from error
        entry.runner = runner
        entry.size_bytes = runner_size_bytes(runner)
        self._metrics.record_load(model_label(task, model_id), time.perf_counter() - started)
        if self._evict_idle(keep=entry):
            self._free_in_background()
        return runner

    def _free_then_load(self, key: ModelKey, free_first: bool) -> Runner:
        if free_first:
            free_memory()
        return self._loader(*key)

    def _over_bounds(self) -> bool:
        if len(self._entries) > self._max_models:
            return True
        used = sum(entry.size_bytes for entry in self._entries.values())
        return self._budget is not None and used > self._budget

    def _evict_idle(self, keep: _Entry | None) -> bool:
        """Evict least recently used idle models until within bounds; True if any went.

        A model in use is skipped, so the pool may briefly hold one more than its
        bound; the next lease that ends brings it back within.
        """
        evicted = False
        for entry in list(self._entries.values()):
            if not self._over_bounds():
                break
            if entry is keep or entry.in_use or entry.runner is None:
                continue
            del self._entries[entry.key]
            entry.runner = None
            self._metrics.evictions += 1
            evicted = True
            log.info("evicted %s for %s", entry.key[1], entry.key[0])
            if self._on_evict is not None:
                self._on_evict(entry.key)
        return evicted

    def _free_in_background(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._executor, free_memory)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Wait for loads under way, then drop every model and free its memory."""
        loading = [entry.loading for entry in self._entries.values() if entry.runner is None]
        await asyncio.gather(*loading, return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        for entry in self._entries.values():
            entry.runner = None
        self._entries.clear()
        await asyncio.get_running_loop().run_in_executor(self._executor, free_memory)
