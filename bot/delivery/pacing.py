"""Pacing message edits per chat so streaming never meets Telegram's flood limits.

Telegram allows about one message or edit per second in a private chat and 20
a minute in a group. Every stream in a chat shares that chat's pace; an edit
that would come too early is not queued but merged into the next one (the
stream always sends its latest text), so no edit ever earns a RetryAfter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

PRIVATE_INTERVAL_S = 1.1  # Telegram's 1 a second, with a margin for clocks and network jitter
GROUP_INTERVAL_S = 4.0  # 15 a minute, leaving room in the group's 20 for ordinary replies
MAX_TRACKED_CHATS = 10_000


class EditPacer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @staticmethod
    def interval(chat_id: int) -> float:
        """Group and channel ids are negative in the Bot API."""
        return GROUP_INTERVAL_S if chat_id < 0 else PRIVATE_INTERVAL_S

    def sent(self, chat_id: int) -> None:
        """A message just went to this chat outside the pacer: the next edit waits its turn."""
        self._next[chat_id] = max(
            self._next.get(chat_id, 0.0), self._clock() + self.interval(chat_id)
        )

    async def slot(self, chat_id: int) -> None:
        """Wait for this chat's next free edit slot and take it."""
        lock = self._locks.setdefault(chat_id, asyncio.Lock())
        async with lock:
            wait = self._next.get(chat_id, 0.0) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next[chat_id] = self._clock() + self.interval(chat_id)
        if len(self._next) > MAX_TRACKED_CHATS:
            self._forget_quiet_chats()

    def _forget_quiet_chats(self) -> None:
        """Chats whose next slot has passed need no memory: a fresh one starts at once anyway."""
        now = self._clock()
        for chat_id in [c for c, at in self._next.items() if at <= now]:
            lock = self._locks.get(chat_id)
            if lock is None or not lock.locked():
                self._next.pop(chat_id, None)
                self._locks.pop(chat_id, None)
