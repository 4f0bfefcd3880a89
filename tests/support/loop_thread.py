"""An event loop on a thread of its own, for driving the async bot from synchronous tests.

Hypothesis runs each example in a plain function; the bot, its emulator and
its store live on this loop for the whole module, and examples hand it
coroutines with `run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from bot.offline.emulator import BotApiEmulator, FloodLimits

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@contextmanager
def far_telegram(flood_limits: FloodLimits, round_trip_s: float) -> Iterator[BotApiEmulator]:
    """The emulator on a loop thread of its own (as Telegram runs elsewhere), a round trip
    away, flood control on: what it counts is when each call arrives."""
    thread = LoopThread()
    emu = BotApiEmulator(flood_limits=flood_limits, round_trip_s=round_trip_s)
    thread.run(emu.start())
    emu.flood.enabled = True
    try:
        yield emu
    finally:
        thread.run(emu.stop())
        thread.close()
