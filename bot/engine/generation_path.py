"""Text generation behind `PipelinePool.submit`: continuous batching, micro-batching when it can't.

Each decoder-only model gets one continuous-batching engine, created on first
use from the pipeline the model cache loaded (so the pool's model bound counts
it) and stopped when the cache evicts that model or the pool closes. Every
request holds a lease on the model while it runs, so a model is never evicted
mid-generation. The engine admits at most `max_running` sequences at once and
keeps the rest in its fair line, so a request for this model hears its place in
line on either path. Requests the engine cannot serve (encoder-decoder models, a
parameter it cannot apply per request such as `repetition_penalty`) go to the
micro-batching path with the same result shape; they stream only where that
path's runner streams (a model that sees pictures does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.engine.continuous_engine import ContinuousGenerationEngine, unsupported_reason
from bot.engine.fair_turns import ANONYMOUS, Caller
from bot.engine.microbatch import MicroBatcher

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]


class GenerationPath:
    """The engine for one (text-generation, model) pair, with its micro-batching fallback."""

    def __init__(
        self,
        fallback: MicroBatcher,
        *,
        max_queue: int,
        max_running: int | None,
        kv_cache_tokens: int,
    ) -> None:
        # The same (task, model) as its fallback, on the same cache and executor.
        self.seat = fallback.seat
        self._fallback = fallback
        self._max_queue = max_queue
        self._max_running = max_running
        self._kv_cache_tokens = kv_cache_tokens
        self._engine: ContinuousGenerationEngine | None = None
        self._engine_model: object | None = None
        self._starting: asyncio.Lock = asyncio.Lock()
        self.served_by_engine = 0
        self.served_by_fallback = 0

    @property
    def queue_depth(self) -> int:
        in_engine = self._engine.in_flight if self._engine is not None else 0
        return self._fallback.queue_depth + in_engine

    @property
    def up(self) -> bool:
        """Serving, or able to start: an engine whose generation thread died is down."""
        return self._fallback.up and (self._engine is None or self._engine.is_running)

    async def submit(
        self,
        inputs: Any,
        params: Mapping[str, Any],
        *,
        on_text: TextCallback | None = None,
        caller: Caller = ANONYMOUS,
    ) -> Any:
        """Continuous batching when the engine can serve these parameters, else micro-batching.

        Either way `caller` takes turns with other owners and hears its place in line:
        the continuous engine's own line admits `max_running` sequences at a time.
        """
        async with self.seat.models.lease(self.seat.task, self.seat.model_id) as runner:
            model = getattr(runner, "model", None)
            reason = unsupported_reason(model, params) if model is not None else "no model"
            if reason is None:
                engine = await self._engine_for(runner)
                self.served_by_engine += 1
                return await engine.generate(inputs, params, on_text=on_text, caller=caller)
        log.debug("generation on %s falls back to micro-batching: %s", self.seat.model_id, reason)
        self.served_by_fallback += 1
        return await self._fallback.submit(inputs, params, on_text=on_text, caller=caller)

    async def _engine_for(self, runner: Any) -> ContinuousGenerationEngine:
        """The running engine for the model now loaded; a reloaded model gets a fresh engine."""
        async with self._starting:
            if self._engine is not None and self._engine_model is not runner.model:
                await self._stop_engine()
            if self._engine is None:
                engine = ContinuousGenerationEngine(
                    runner.model,
                    runner.tokenizer,
                    max_queue=self._max_queue,
                    max_running=self._max_running,
                    kv_cache_tokens=self._kv_cache_tokens,
                )
                await asyncio.get_running_loop().run_in_executor(self.seat.executor, engine.start)
                self._engine, self._engine_model = engine, runner.model
            return self._engine

    async def model_evicted(self) -> None:
        """The cache let the model go: stop the engine so its weights and KV cache are freed."""
        async with self._starting:
            await self._stop_engine()

    async def _stop_engine(self) -> None:
        engine, self._engine, self._engine_model = self._engine, None, None
        if engine is not None:
            await engine.close()

    async def close(self) -> None:
        await asyncio.gather(self._stop_engine(), self._fallback.close())
