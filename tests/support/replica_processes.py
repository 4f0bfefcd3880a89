"""Several `hfbot run` processes of one bot (bot/offline/bot_process.py), started together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bot.offline.bot_process import BotProcess


@contextlib.asynccontextmanager
async def started(replicas: list[BotProcess]) -> AsyncIterator[None]:
    """Every replica started; whatever happens in the block, none is left running after."""
    try:
        await asyncio.gather(*(replica.start(timeout=120) for replica in replicas))
        yield
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.returncode is None:
                replica.kill()
                await replica.wait()
