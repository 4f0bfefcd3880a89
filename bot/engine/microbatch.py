"""Micro-batching: one model call for the requests that arrive together.

One `MicroBatcher` serves one (task, model). A request waits at most
`max_wait_s` after the oldest waiting one for others with the same parameters
to join it; then up to `max_batch_size` of them run as one
`runner(inputs, batch_size=n, **params)` call in the executor, and each caller
gets its own result back. On a CPU the second to sixteenth rows of a batch cost
far less than their own forward passes would, so under load this multiplies
throughput; alone, a request pays only the wait.

Batches take turns across owners (the person a request is for): the owner
served longest ago goes first, and within a batch every owner with a request
waiting gets one place before anyone gets a second. One person's burst of
requests therefore delays someone else's single request by at most one batch.
Each waiting request can be told its place in line (`on_position`), again
whenever it moves, and 0 when its batch starts.

Only requests that have not started can be taken back (cancelled, timed out,
or refused at close); a running batch always finishes and delivers. A runner
that works in steps (`takes_controls`, see `bot.engine.controls`) also hears,
per request, that its caller has gone, and stops that request at its next
step; it streams each request's text or progress to the caller as it goes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import torch

from bot.engine.controls import ProgressCallback, RequestControl, TextCallback
from bot.engine.fair_turns import (
    ANONYMOUS,
    MAX_TRACKED_OWNERS,
    Caller,
    PositionCallback,
    fair_order,
    tell,
)
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
    frozen: Hashable = value
    return frozen


@dataclass(eq=False)
class _Request:
    inputs: Any
    params: dict[str, Any]
    key: Hashable
    future: asyncio.Future[Any]
    enqueued_at: float
    owner: Hashable
    on_position: PositionCallback | None = None
    on_text: TextCallback | None = None
    on_progress: ProgressCallback | None = None
    position: int | None = None
    started: bool = False
    stopped: threading.Event = field(default_factory=threading.Event)

    def tell_position(self, position: int) -> None:
        """Tell the caller where they stand, only when that changed."""
        if self.on_position is None or position == self.position:
            return
        self.position = position
        tell(self.on_position, position)

    def control(self, loop: asyncio.AbstractEventLoop) -> RequestControl:
        """The runner's handle on this request, its callbacks hopping back to `loop`."""

        def on_loop(callback: Callable[..., None] | None) -> Callable[..., None] | None:
            if callback is None:
                return None

            def deliver(*values: object) -> None:
                if self.future.done():
                    return
                try:
                    callback(*values)
                except Exception:  # a listener's failure must not stop the batch
                    log.exception("request callback failed")

            def from_any_thread(*values: object) -> None:
                loop.call_soon_threadsafe(deliver, *values)

            return from_any_thread

        return RequestControl(on_loop(self.on_text), on_loop(self.on_progress), self.stopped)


def run_batch(
    runner: Runner,
    inputs: list[Any],
    params: dict[str, Any],
    controls: list[RequestControl] | None = None,
) -> list[Any]:
    """The executor's side: one model call, without autograd bookkeeping."""
    extra: dict[str, Any] = {} if controls is None else {"controls": controls}
    with torch.inference_mode():
        results = runner(inputs, batch_size=len(inputs), **params, **extra)
    if len(results) != len(inputs):
        raise RuntimeError(f"runner returned {len(results)} results for {len(inputs)} inputs")
    return results


@dataclass(frozen=True)
class ModelSeat:
    """Where one (task, model) runs: the cache that lends its model and the executor its
    batches run in. Every local engine of the pool sits on one."""

    task: str
    model_id: str
    models: ModelCache
    executor: Executor


class MicroBatcher:
    """The micro-batching engine of one (task, model), behind `PipelinePool.submit`."""

    def __init__(
        self,
        seat: ModelSeat,
        *,
        metrics: PoolMetrics,
        max_batch_size: int,
        max_wait_s: float,
        queue_size: int,
    ) -> None:
        self.seat = seat
        self._metrics = metrics
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._queue_size = queue_size
        self._pending: deque[_Request] = deque()
        self._batches = itertools.count()
        self._last_served: dict[Hashable, int] = {}
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
        caller: Caller = ANONYMOUS,
    ) -> Any:
        """Queue one request and wait for its result; `on_text` hears the text so far from a
        runner that streams it (see `bot.engine.controls`), and nothing from the others."""
        if self._closed:
            raise PoolClosed(task=self.seat.task, model=self.seat.model_id)
        if len(self._pending) >= self._queue_size:
            raise PoolBusy(task=self.seat.task, model=self.seat.model_id, queued=len(self._pending))
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        request = _Request(
            inputs,
            dict(params),
            params_key(params),
            future,
            loop.time(),
            owner=caller.owner if caller.owner is not None else future,
            on_position=caller.on_position,
            on_text=on_text,
            on_progress=caller.on_progress,
        )
        self._pending.append(request)
        self._tell_positions()
        self._arrived.set()
        if self._worker is None:
            self._worker = loop.create_task(self._work(), name=f"microbatch {self.seat.model_id}")
        try:
            return await request.future
        except asyncio.CancelledError:
            if not request.started:
                self._pending.remove(request)
                self._tell_positions()
            request.stopped.set()
            raise

    async def close(self) -> None:
        """Refuse new requests, answer queued ones with PoolClosed, let a running batch finish."""
        self._closed = True
        while self._pending:
            _settle(self._pending.popleft(), error=PoolClosed(task=self.seat.task, model=self.seat.model_id))
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
            async with self.seat.models.lease(self.seat.task, self.seat.model_id) as runner:
                batch = await self._collect()
                if batch:
                    await self._run(runner, batch)
        except Exception as error:
            if not isinstance(error, ModelLoadFailed):
                log.exception("micro-batcher for %s failed", self.seat.model_id)
            while self._pending:
                _settle(self._pending.popleft(), error=error)

    async def _collect(self) -> list[_Request]:
        """Wait until the oldest request has waited `max_wait_s` or a batch is full; take it."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            return []
        first = fair_order(self._pending, self._last_served)[0]
        key = first.key
        deadline = first.enqueued_at + self._max_wait_s
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
        """The next batch in fair order; its owners go to the back of the line."""
        candidates = [request for request in self._pending if request.key == key]
        batch = fair_order(candidates, self._last_served)[: self._max_batch_size]
        taken = set(batch)
        self._pending = deque(r for r in self._pending if r not in taken)
        now = asyncio.get_running_loop().time()
        number = next(self._batches)
        for request in batch:
            request.started = True
            request.tell_position(0)
            self._metrics.record_queue_wait(now - request.enqueued_at)
            self._last_served[request.owner] = number
        if len(self._last_served) > MAX_TRACKED_OWNERS:
            waiting = {request.owner for request in self._pending}
            self._last_served = {o: n for o, n in self._last_served.items() if o in waiting}
        self._tell_positions()
        return batch

    def _tell_positions(self) -> None:
        """Everyone waiting learns their place in line (1 = next to start)."""
        if not any(request.on_position is not None for request in self._pending):
            return
        for place, request in enumerate(fair_order(self._pending, self._last_served), 1):
            request.tell_position(place)

    async def _run(self, runner: Runner, batch: list[_Request]) -> None:
        """Run a batch; if it fails, run its requests alone so one bad input fails one caller."""
        loop = asyncio.get_running_loop()
        self._metrics.record_batch(len(batch))
        controls = (
            [request.control(loop) for request in batch]
            if getattr(runner, "takes_controls", False)
            else None
        )
        try:
            results = await loop.run_in_executor(
                self.seat.executor,
                self.seat.models.run_measured,
                (self.seat.task, self.seat.model_id),
                run_batch,
                runner,
                [r.inputs for r in batch],
                batch[0].params,
                controls,
            )
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.info(
                "batch of %d on %s failed (%s); retrying one by one",
                len(batch),
                self.seat.model_id,
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
