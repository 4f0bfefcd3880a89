"""Long polling: at once for a bot alone; for replicas, only while this one holds the lease.

Replicas of one bot in polling mode take turns through `bot.replicas.poll_leader`: one
round every `renew_s` renews or takes the lease, and the updater is started or stopped
to match. Starting or stopping runs beside the rounds, not in them: a getUpdates that
Telegram is slow to answer must not hold the renewal up until the lease lapses. A
standby still answers: what a dead poller had accepted, from the inbox, once its claims
lapse (`bot.app.update_inbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram.error import TelegramError
from telegram.ext import Updater

from bot.replicas.poll_leader import PollLeader
from handlers import ALLOWED_UPDATES

log = logging.getLogger(__name__)


def polling_failed(exc: TelegramError) -> None:
    """One line instead of PTB's traceback; its loop tries again, waiting up to 30 s."""
    log.warning("polling Telegram failed (%s); trying again", exc)


class Polling:
    """The updater, started now (`leader` None) or whenever this replica leads."""

    def __init__(self, updater: Updater, leader: PollLeader | None = None) -> None:
        self._updater = updater
        self._leader = leader
        self._stopping = asyncio.Event()
        self._rounds: asyncio.Task[None] | None = None
        self._steering: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._leader is None:
            await self._start_updater()
        else:
            self._rounds = asyncio.create_task(self._follow(self._leader))

    async def _follow(self, leader: PollLeader) -> None:
        while not self._stopping.is_set():
            leads = await leader.hold()
            steady = self._steering is None or self._steering.done()
            if steady and leads != self._updater.running:
                self._steering = asyncio.create_task(self._steer(leads))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(leader.renew_s):
                    await self._stopping.wait()

    async def _steer(self, leads: bool) -> None:
        try:
            if leads:
                await self._start_updater()
            else:
                await self._updater.stop()
        except TelegramError as exc:  # tried again next round, the lease still held
            polling_failed(exc)

    async def _start_updater(self) -> None:
        await self._updater.start_polling(
            allowed_updates=ALLOWED_UPDATES, error_callback=polling_failed
        )

    async def stop(self) -> None:
        """No more getUpdates from this process; then the lease goes to another replica."""
        self._stopping.set()
        if self._rounds is not None:
            await self._rounds
        if self._steering is not None:  # the last round may have started one
            await self._steering
        if self._updater.running:
            await self._updater.stop()
        if self._leader is not None:
            await self._leader.release()
