"""Requests in flight per user: a cap on how many, and /cancel (or a Stop button) to stop them.

A request is admitted for its whole life (reading its input, vetting, the
model), so one user cannot fill a model's queue however fast they type. Its
model call runs as a child task of the handler; cancelling the child withdraws
it from the pool (before it started) or stops it at the next step, while the
handler itself lives on to tell the person it stopped.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from bot.errors import Cancelled, TooManyInFlight

T = TypeVar("T")


class RunningRequests:
    def __init__(self) -> None:
        self._by_user: dict[int, dict[int, asyncio.Task[Any]]] = {}
        self._admitted: Counter[int] = Counter()
        self._next_id = 0

    @asynccontextmanager
    async def admitted(self, user_id: int, limit: int) -> AsyncIterator[None]:
        """Hold one of this user's `limit` places for a request, or refuse it at once."""
        if self._admitted[user_id] >= limit:
            raise TooManyInFlight(limit=limit)
        self._admitted[user_id] += 1
        try:
            yield
        finally:
            self._admitted[user_id] -= 1
            if not self._admitted[user_id]:
                del self._admitted[user_id]

    async def run(self, user_id: int, work: Coroutine[Any, Any, T]) -> T:
        """Await `work` as a cancellable request of this user; raise Cancelled if stopped."""
        task = asyncio.ensure_future(work)
        request_id = self._next_id
        self._next_id += 1
        self._by_user.setdefault(user_id, {})[request_id] = task
        try:
            return await task
        except asyncio.CancelledError:
            if _current_task_cancelling():
                raise
            raise Cancelled() from None
        finally:
            mine = self._by_user.get(user_id, {})
            mine.pop(request_id, None)
            if not mine:
                self._by_user.pop(user_id, None)

    async def cancel(self, user_id: int) -> int:
        """Stop every request of this user; returns how many were running."""
        return self.cancel_here(user_id)

    def cancel_here(self, user_id: int) -> int:
        """Stop every request of this user that this process runs; returns how many."""
        tasks = list(self._by_user.get(user_id, {}).values())
        for task in tasks:
            task.cancel()
        return len(tasks)

    def count(self, user_id: int) -> int:
        return len(self._by_user.get(user_id, {}))


def _current_task_cancelling() -> bool:
    current = asyncio.current_task()
    return bool(current and current.cancelling())
