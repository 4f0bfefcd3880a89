"""The "typing…" indicator, shared by every request running in a chat."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telegram import Bot
from telegram.constants import ChatAction

log = logging.getLogger(__name__)

TYPING_REFRESH_S = 4.5


@dataclass
class _Typing:
    requests: int
    task: asyncio.Task[None]


class ChatTyping:
    """One "typing…" per chat however many requests run there, and none for quick answers.

    Every chat action counts against Telegram's per-group budget (20 calls a
    minute), so a busy group gets one indicator, refreshed every 4.5 s, shown
    only once a request has taken longer than `grace_s`.
    """

    def __init__(self, grace_s: float = 1.0, refresh_s: float = TYPING_REFRESH_S) -> None:
        self.grace_s = grace_s
        self.refresh_s = refresh_s
        self._chats: dict[int, _Typing] = {}

    @contextlib.asynccontextmanager
    async def during(self, bot: Bot, chat_id: int) -> AsyncIterator[None]:
        entry = self._chats.get(chat_id)
        if entry is None:
            entry = self._chats[chat_id] = _Typing(0, asyncio.create_task(self._show(bot, chat_id)))
        entry.requests += 1
        try:
            yield
        finally:
            entry.requests -= 1
            if entry.requests == 0:
                del self._chats[chat_id]
                entry.task.cancel()

    async def _show(self, bot: Bot, chat_id: int) -> None:
        await asyncio.sleep(self.grace_s)
        while True:
            try:
                await bot.send_chat_action(chat_id, ChatAction.TYPING)
            except Exception:  # a lost chat action must never fail a request
                log.debug("chat action failed", exc_info=True)
            await asyncio.sleep(self.refresh_s)
