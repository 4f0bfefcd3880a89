"""Micro-batching: one model call for the requests that arrive together.

One `MicroBatcher` serves one (task, model). A request waits at most
`max_wait_s` after the oldest waiting one for others with the same parameters
to join it; then up to `max_batch_size` of them run as one
`runner(inputs, batch_size=n, **params)` call in the executor, and each caller
gets its own result back. On a CPU the second to sixteenth rows of a batch cost
far less than their own forward passes would, so under load this multiplies
throughput; alone, a request pays only the wait.

Only requests that have not started can be taken back (cancelled, timed out,
or refused at close); a running batch always finishes and delivers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import torch

from bot.engine.metrics import PoolMetrics
from bot.engine.model_cache import ModelCache
from bot.engine.runners import Runner
from bot.errors import ModelLoadFailed, PoolBusy, PoolClosed

log = logging.getLogger(__name__)


def params_key(params: Mapping[str, Any]) -> Hashable:
    """A hashable form of a request's parameters: equal parameters batch together."""
    return _freeze(params)


def _freeze(value: Any) -> Hashable:
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    if isinstance(value, set | frozenset):
        return frozenset(_freeze(item) for item in value)
    return value


@dataclass(eq=False)
class _Request:
    inputs: Any
    params: dict[str, Any]
    key: Hashable
    future: asyncio.Future[Any]
    enqueued_at: float
    started: bool = False


def run_batch(runner: Runner, inputs: list[Any], params: dict[str, Any]) -> list[Any]:
    """The executor's side: one model call, without autograd bookkeeping."""
    with torch.inference_mode():
        results = runner(inputs, batch_size=len(inputs), **params)
    if len(results) != len(inputs):
        raise RuntimeError(f"runner returned {len(results)} results for {len(inputs)} inputs")
    return results


class MicroBatcher:
    """The micro-batching engine of one (task, model), behind `PipelinePool.submit`."""

    def __init__(
        self,
        task: str,
        model_id: str,
        *,
        models: ModelCache,
        executor: Executor,
        metrics: PoolMetrics,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
    ) -> None:
        self.task = task
        self.model_id = model_id
        self._models = models
        self._executor = executor
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue_size = queue_size
        self._pending: deque[_Request] = deque()
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def queue_depth(self) -> int:
        """Requests waiting to start (a running batch is no longer queued)."""
        return len(self._pending)

    @property
    def up(self) -> bool:
        return not self._closed

    async def submit(
        self,
        inputs: Any,
        params: Mapping[str, Any],
        *,
        on_text: Callable[[str], None] | None = None,
    ) -> Any:
        """Queue one request and wait for its result; `on_text` is unused (no streaming here)."""
        if self._closed:
            raise PoolClosed(task=self.task, model=self.model_id)
        if len(self._pending) >= self._queue_size:
            raise PoolBusy(task=self.task, model=self.model_id, queued=len(self._pending))
        loop = asyncio.get_running_loop()
        request = _Request(
            inputs, dict(params), params_key(params), loop.create_future(), loop.time()
        )
        self._pending.append(request)
        self._arrived.set()
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name=f"microbatch {self.model_id}")
        try:
            return await request.future
        except asyncio.CancelledError:
            if not request.started:
                self._pending.remove(request)
            raise

    async def close(self) -> None:
        """Refuse new requests, answer queued ones with PoolClosed, let a running batch finish."""
        self._closed = True
        while self._pending:
            _settle(self._pending.popleft(), error=PoolClosed(task=self.task, model=self.model_id))
        self._arrived.set()
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _work(self) -> None:
        """Serve batches until nothing is waiting; `submit` starts a new worker when needed."""
        try:
            while self._pending:
                await self._serve_one_batch()
        finally:
            self._worker = None

    async def _serve_one_batch(self) -> None:
        """Everyone waiting shares the model's fate: a failed load answers all of them."""
        try:
            async with self._models.lease(self.task, self.model_id) as runner:
                batch = await self._collect()
                if batch:
                    await self._run(runner, batch)
        except Exception as error:
            if not isinstance(error, ModelLoadFailed):
                log.exception("micro-batcher for %s failed", self.model_id)
            while self._pending:
                _settle(self._pending.popleft(), error=error)

    async def _collect(self) -> list[_Request]:
        """Wait until the oldest request has waited `max_wait_s` or a batch is full; take it."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            return []
        key = self._pending[0].key
        deadline = self._pending[0].enqueued_at + self._max_wait_s
        while not self._closed and self._count(key) < self._max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._arrived.wait()
            except TimeoutError:
                break
        return self._take(key)

    def _count(self, key: Hashable) -> int:
        return sum(1 for request in self._pending if request.key == key)

    def _take(self, key: Hashable) -> list[_Request]:
        batch: list[_Request] = []
        rest: deque[_Request] = deque()
        now = asyncio.get_running_loop().time()
        for request in self._pending:
            if request.key == key and len(batch) < self._max_batch_size:
                request.started = True
                self._metrics.record_queue_wait(now - request.enqueued_at)
                batch.append(request)
            else:
                rest.append(request)
        self._pending = rest
        return batch

    async def _run(self, runner: Runner, batch: list[_Request]) -> None:
        """Run a batch; if it fails, run its requests alone so one bad input fails one caller."""
        loop = asyncio.get_running_loop()
        self._metrics.record_batch(len(batch))
        try:
            results = await loop.run_in_executor(
                self._executor, run_batch, runner, [r.inputs for r in batch], batch[0].params
            )
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.info(
                "batch of %d on %s failed (%s); retrying one by one",
                len(batch),
                self.model_id,
                error,
            )
            for request in batch:
                await self._run(runner, [request])
            return
        for request, result in zip(batch, results, strict=True):
            _settle(request, result=result)


def _settle(request: _Request, *, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a caller who is still listening (a cancelled caller's future is already done)."""
    if request.future.done():
        return
    if error is not None:
        request.future.set_exception(error)
    else:
        request.future.set_result(result)
