"""Per-user request limits: a sliding window kept in memory.

A window of timestamps per user is exact and small (at most `per_minute`
entries each); users idle for a minute cost nothing after their next check.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from bot.errors import RateLimited

WINDOW_S = 60.0


class RateLimiter(Protocol):
    """Requests a minute per person: this process's window, or the one replicas share."""

    per_minute: int

    async def check(self, user_id: int) -> None: ...


class UserRateLimiter:
    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[int, deque[float]] = {}

    async def check(self, user_id: int) -> None:
        """Count one request, or raise RateLimited saying how long to wait (async, as the
        window shared by several replicas is: `bot.replicas.shared_limits`)."""
        if self.per_minute <= 0:
            return
        now = self._clock()
        window = self._seen.setdefault(user_id, deque())
        while window and now - window[0] >= WINDOW_S:
            window.popleft()
        if len(window) >= self.per_minute:
            raise RateLimited(seconds=max(1, math.ceil(WINDOW_S - (now - window[0]))))
        window.append(now)
        if len(self._seen) > 10_000:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        for user_id in [u for u, w in self._seen.items() if not w or now - w[-1] >= WINDOW_S]:
            del self._seen[user_id]
