"""The loaded models of one pool: lazy loads on their own thread, kept by a memory budget.

A model is loaded the first time a request needs it, on the cache's loading
thread: never the thread that serves batches, so a first `/summarize` does not
hold up everyone's `/sentiment`. A faster form of a loaded model (its ONNX
export) is made afterwards on the same loading thread, while the model already
serves on torch, and takes over for the batches that start after it is ready:
nobody's first answer waits for an export. An export keeps the CPU busy for
seconds (minutes for a large model), so it waits for the pool to be quiet (no
batch running for `upgrade_quiet_s`), or at most `upgrade_wait_s`. Everyone asking for a model that is still loading waits on that
same load; a failed load is reported to each of them and forgotten, so a later
request tries again. Models are lent out with `lease()`; only a model nobody
holds is ever evicted, least recently used first.

What stays loaded is decided by memory, not by a count. Each model's
footprint is measured once it is loaded (its weights or ONNX session, or the
process's resident memory growth during the load when that is larger) and
again around its first batch (what the batch allocates and keeps: caches,
arenas). Before a load, the weights on disk stand in for the footprint, so
room is made first and a model larger than the whole budget is refused with
its size and the budget instead of pushing the machine into swap. A count
limit is still available for operators who want one.
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
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import torch

from bot.engine.metrics import PoolMetrics, model_label
from bot.engine.onnx_export import OnnxModel
from bot.engine.runners import Runner
from bot.errors import ModelExceedsMemory, ModelLoadFailed

log = logging.getLogger(__name__)

Loader = Callable[[str, str], Runner]
"""Blocking `(task, model_id) -> Runner`; the cache calls it on its loading thread."""

Upgrade = Callable[[str, str], Runner | None]
"""Blocking `(task, model_id) -> faster runner`, or None when there is none (loading thread)."""

SizeEstimate = Callable[[str, str], int | None]
"""Blocking `(task, model_id) -> bytes` a model will need before it is loaded, if known."""

ModelKey = tuple[str, str]
T = TypeVar("T")

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def machine_memory_bytes() -> int:
    """The memory this process may use: the machine's RAM, or its container's limit if lower.

    Inside Docker, psutil reports the host's RAM; the cgroup file says what the
    container is really allowed before the kernel's OOM killer steps in.
    """
    total = int(psutil.virtual_memory().total)
    for path in _CGROUP_LIMITS:
        with suppress(OSError, ValueError):
            text = path.read_text().strip()
            if text != "max" and 0 < int(text) < total:
                return int(text)
    return total


def resolve_budget(setting: int | str, share: float) -> int | None:
    """Bytes models may use: `auto` is `share` of `machine_memory_bytes()`, a number is MiB,
    `off` is no memory limit."""
    if setting == "off":
        return None
    if setting == "auto":
        return int(machine_memory_bytes() * share)
    return int(setting) * 2**20


def resident_bytes() -> int:
    return int(psutil.Process().memory_info().rss)


def runner_size_bytes(runner: Runner) -> int:
    """Bytes of the runner's weights, in torch or in onnxruntime; 0 for test fakes."""
    model = getattr(runner, "model", None)
    if isinstance(model, OnnxModel):
        return model.weight_bytes
    if not isinstance(model, torch.nn.Module):
        return 0
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def weights_on_disk(source: str) -> int | None:
    """Bytes of the safetensors weights in a model folder (blocking: disk); None for a Hub id
    not downloaded yet."""
    folder = Path(source)
    if not folder.is_dir():
        return None
    sizes = [path.stat().st_size for path in folder.glob("*.safetensors")]
    return sum(sizes) if sizes else None


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


def describe_mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


@dataclass(eq=False)
class _Entry:
    key: ModelKey
    loading: asyncio.Task[Runner] = field(init=False)
    runner: Runner | None = None
    size_bytes: int = 0
    first_batch_measured: bool = False
    in_use: int = 0


def _retrieve_exception(task: asyncio.Task[Runner]) -> None:
    """Each waiter gets the load's error; this keeps asyncio from also logging it as lost."""
    if not task.cancelled():
        task.exception()


class ModelCache:
    """Runners within `memory_budget_bytes` (and `max_models`, when set), loaded off the
    batch thread."""

    def __init__(
        self,
        loader: Loader,
        *,
        memory_budget_bytes: int | None,
        max_models: int | None = None,
        metrics: PoolMetrics,
        estimate: SizeEstimate | None = None,
        on_evict: Callable[[ModelKey], None] | None = None,
        load_executor: Executor | None = None,
        measure: Callable[[], int] = resident_bytes,
        upgrade: Upgrade | None = None,
        upgrade_quiet_s: float = 0.0,
        upgrade_wait_s: float = 0.0,
    ) -> None:
        """`load_executor` runs loads, exports and memory trims; by default one thread of
        the cache's own (loads read the disk and use every core: two at once gain nothing).
        `measure` reads the process's memory (resident bytes)."""
        self._loader = loader
        self._upgrade = upgrade
        self._upgrades: set[asyncio.Task[None]] = set()
        self._quiet_s = upgrade_quiet_s
        self._wait_s = upgrade_wait_s
        self._leased = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._busy = asyncio.Event()
        self._estimate = estimate
        self._owns_executor = load_executor is None
        self._load_executor = load_executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="hfbot-load"
        )
        self._max_models = max_models
        self._budget = memory_budget_bytes
        self._metrics = metrics
        self._on_evict = on_evict
        self._measure = measure
        self._entries: OrderedDict[ModelKey, _Entry] = OrderedDict()
        self._background: set[asyncio.Future[None]] = set()

    @property
    def memory_budget_bytes(self) -> int | None:
        return self._budget

    def keys(self) -> tuple[ModelKey, ...]:
        """(task, model id) of every model loaded or loading."""
        return tuple(self._entries)

    def loaded(self) -> tuple[str, ...]:
        """Labels of loaded models, least recently used first."""
        return tuple(model_label(*e.key) for e in self._entries.values() if e.runner is not None)

    def footprints(self) -> dict[str, int]:
        """Measured bytes of each loaded model, by label."""
        return {
            model_label(*e.key): e.size_bytes
            for e in self._entries.values()
            if e.runner is not None
        }

    def used_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self._entries.values())

    @asynccontextmanager
    async def lease(self, task: str, model_id: str) -> AsyncIterator[Runner]:
        """Hold a loaded runner: it cannot be evicted until the block ends."""
        entry, runner = await self._acquire((task, model_id))
        entry.in_use += 1
        self._leased += 1
        self._idle.clear()
        self._busy.set()
        try:
            yield runner
        finally:
            entry.in_use -= 1
            self._leased -= 1
            if not self._leased:
                self._busy.clear()
                self._idle.set()
            if entry.key in self._entries:
                self._entries.move_to_end(entry.key)
            if self._evict_idle(keep=None):
                self._free_in_background()

    def run_measured(self, key: ModelKey, call: Callable[..., T], *args: Any) -> T:
        """Blocking (a batch thread): `call(*args)`; the model's first batch also counts the
        memory it leaves allocated into the model's footprint."""
        entry = self._entries.get(key)
        if entry is None or entry.first_batch_measured:
            return call(*args)
        entry.first_batch_measured = True  # claimed: a batch running beside it is not counted
        before = self._measure()
        result = call(*args)
        entry.size_bytes += max(0, self._measure() - before)
        return result

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
        entry.loading = asyncio.get_running_loop().create_task(self._load(entry))
        entry.loading.add_done_callback(_retrieve_exception)
        return entry

    async def _load(self, entry: _Entry) -> Runner:
        task, model_id = entry.key
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            estimate = await loop.run_in_executor(self._load_executor, self._estimated, entry.key)
            self._refuse_if_too_big(model_id, estimate)
            entry.size_bytes = estimate or 0
            free_first = self._evict_idle(keep=entry)
            runner, grown = await loop.run_in_executor(
                self._load_executor, self._free_then_load, entry.key, free_first
            )
            size = max(runner_size_bytes(runner), grown, entry.size_bytes)
            self._refuse_if_too_big(model_id, size)
        except Exception as error:
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
            self._metrics.load_failures += 1
            if isinstance(error, ModelExceedsMemory):
                log.warning("refused %s for %s: %s", model_id, task, error)
                raise
            log.warning("loading %s for %s failed: %s", model_id, task, error)
            raise ModelLoadFailed(task=task, model=model_id, reason=str(error)) from error
        entry.runner = runner
        entry.size_bytes = size
        self._metrics.record_load(model_label(task, model_id), time.perf_counter() - started)
        log.info("loaded %s for %s (%s)", model_id, task, describe_mib(size))
        if self._evict_idle(keep=entry):
            self._free_in_background()
        if self._upgrade is not None and not isinstance(getattr(runner, "model", None), OnnxModel):
            upgrading = loop.create_task(self._upgraded(entry, runner))
            self._upgrades.add(upgrading)
            upgrading.add_done_callback(self._upgrades.discard)
        return runner

    async def _upgraded(self, entry: _Entry, runner: Runner) -> None:
        """Put the faster runner in place of `runner` once made, if the model is still loaded.

        Batches running on the old runner finish on it; its memory goes back
        once the last of them lets go. A failed upgrade leaves the model as it was.
        """
        assert self._upgrade is not None
        loop = asyncio.get_running_loop()
        await self._quiet()
        if self._entries.get(entry.key) is not entry or entry.runner is not runner:
            return
        try:
            faster, grown = await loop.run_in_executor(
                self._load_executor, self._measured_call, self._upgrade, entry.key
            )
        except Exception as error:
            log.warning("%s for %s stays as loaded: %s", entry.key[1], entry.key[0], error)
            return
        if (
            faster is None
            or self._entries.get(entry.key) is not entry
            or entry.runner is not runner
        ):
            return
        entry.runner = faster
        entry.size_bytes = max(runner_size_bytes(faster), grown)
        entry.first_batch_measured = False
        log.info(
            "%s for %s now runs faster (%s)",
            entry.key[1],
            entry.key[0],
            describe_mib(entry.size_bytes),
        )
        self._free_in_background()

    async def _quiet(self) -> None:
        """Return once no model has been leased for `upgrade_quiet_s`, or after `upgrade_wait_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    await self._idle.wait()
            except TimeoutError:
                return
            try:
                async with asyncio.timeout(min(self._quiet_s, max(0.0, deadline - loop.time()))):
                    await self._busy.wait()
            except TimeoutError:
                return

    def _measured_call(self, call: Upgrade, key: ModelKey) -> tuple[Runner | None, int]:
        before = self._measure()
        result = call(*key)
        return result, max(0, self._measure() - before)

    async def upgrades_done(self) -> None:
        """Wait until every upgrade under way has finished (for tests and benchmarks)."""
        while self._upgrades:
            await asyncio.gather(*self._upgrades, return_exceptions=True)

    def _refuse_if_too_big(self, model_id: str, size: int | None) -> None:
        if self._budget is not None and size is not None and size > self._budget:
            raise ModelExceedsMemory(
                model=model_id, size=describe_mib(size), budget=describe_mib(self._budget)
            )

    def _estimated(self, key: ModelKey) -> int | None:
        return self._estimate(*key) if self._estimate is not None else None

    def _free_then_load(self, key: ModelKey, free_first: bool) -> tuple[Runner, int]:
        """The runner, and how much the process's memory grew while it loaded."""
        if free_first:
            free_memory()
        before = self._measure()
        runner = self._loader(*key)
        return runner, max(0, self._measure() - before)

    def _over_bounds(self) -> bool:
        if self._max_models is not None and len(self._entries) > self._max_models:
            return True
        return self._budget is not None and self.used_bytes() > self._budget

    def _evict_idle(self, keep: _Entry | None) -> bool:
        """Evict least recently used idle models until within bounds; True if any went.

        A model in use is skipped, so the pool may briefly hold more than its
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
            log.info(
                "evicted %s for %s (%s)", entry.key[1], entry.key[0], describe_mib(entry.size_bytes)
            )
            if self._on_evict is not None:
                self._on_evict(entry.key)
        return evicted

    def _free_in_background(self) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._load_executor, free_memory)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Wait for loads under way, then drop every model and free its memory."""
        loading = [entry.loading for entry in self._entries.values() if entry.runner is None]
        await asyncio.gather(*loading, return_exceptions=True)
        await self.upgrades_done()
        await asyncio.gather(*self._background, return_exceptions=True)
        for entry in self._entries.values():
            entry.runner = None
        self._entries.clear()
        await asyncio.get_running_loop().run_in_executor(self._load_executor, free_memory)
        if self._owns_executor:
            self._load_executor.shutdown(wait=False)
