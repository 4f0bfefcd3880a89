"""Telegram's flood control, off unless a test turns it on.

Telegram answers 429 with retry_after when a bot writes too fast into one chat or
overall. The bot is meant to stay under the limits by itself (its outbound
limiter), so tests enable this and assert that `served` stays at zero.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RateWindow:
    """At most `max_count` writes in any sliding window of `period_s` seconds."""

    max_count: int
    period_s: float


@dataclass(frozen=True)
class FloodLimits:
    """The limits Telegram documents: 1/s in any chat, and 20/min in a group, 30/s overall."""

    per_chat: RateWindow = RateWindow(1, 1.0)
    group: RateWindow = RateWindow(20, 60.0)
    overall: RateWindow = RateWindow(30, 1.0)


@dataclass
class FloodControl:
    """Sliding-window counters per chat and overall; `check` raises FloodError when over."""

    enabled: bool = False
    limits: FloodLimits = field(default_factory=FloodLimits)
    served: int = 0
    clock: Callable[[], float] = time.monotonic
    _per_chat: dict[int, deque[float]] = field(default_factory=dict)
    _per_group: dict[int, deque[float]] = field(default_factory=dict)
    _overall: deque[float] = field(default_factory=deque)

    def check(self, chat_id: int, is_group: bool) -> None:
        """Count one write into `chat_id`, or raise FloodError (and count a 429 served)."""
        if not self.enabled:
            return
        now = self.clock()
        windows = [(self._per_chat.setdefault(chat_id, deque()), self.limits.per_chat)]
        if is_group:
            windows.append((self._per_group.setdefault(chat_id, deque()), self.limits.group))
        windows.append((self._overall, self.limits.overall))
        wait = max(_wait_needed(times, window, now) for times, window in windows)
        if wait > 0:
            self.served += 1
            raise FloodError(max(1, math.ceil(wait)))
        for times, _ in windows:
            times.append(now)

    def check_overall(self) -> None:
        """Count one call against the overall limit only (chat actions, drafts)."""
        if not self.enabled:
            return
        now = self.clock()
        wait = _wait_needed(self._overall, self.limits.overall, now)
        if wait > 0:
            self.served += 1
            raise FloodError(max(1, math.ceil(wait)))
        self._overall.append(now)

    def reset(self) -> None:
        """Forget past writes, e.g. between two phases of a test."""
        self._per_chat.clear()
        self._per_group.clear()
        self._overall.clear()


class FloodError(Exception):
    """A write over the limit; Telegram tells the bot how many seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too Many Requests: retry after {retry_after}")
        self.retry_after = retry_after


def _wait_needed(times: deque[float], window: RateWindow, now: float) -> float:
    while times and times[0] <= now - window.period_s:
        times.popleft()
    if len(times) < window.max_count:
        return 0.0
    return times[0] + window.period_s - now
