"""One turn at a time per conversation: a message waits for the turn before it to be answered
and stored, then reads a history that holds it.

People type two or three short messages in a row, and in a group that shares one
conversation several members write at once. Were each turn to read the history as it
stands when it arrives, a second message would be answered without the first (both
read the history before either was stored). So each conversation is a line: a turn
holds its conversation (`ConversationTurns.turn`) from reading its history until its
answer is stored, and the next one waits, in the order they asked. Different
conversations never wait for one another, so their turns still run, and batch, together.

What waits is only the turn of one conversation; this knows nothing of Telegram or of
the store. The key says which conversation (a chat, its forum topic, and the person, or
None where a group shares one). In one process the line is asyncio futures. Replicas of
one bot share it (`share`, with `bot.replicas.shared_lines`): two messages of one
conversation landing on two replicas at once wait in one line in Redis, in the order
Telegram numbered them (`place`), behind the same one call; while Redis cannot be
reached each replica keeps its own line.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

OnWait = Callable[[], Awaitable[None]]


class SharedTurns(Protocol):
    """Conversations' lines every replica waits in (`bot.replicas.shared_lines.SharedLines`)."""

    async def join(self, line: str, member: int) -> bool:
        """Take `member`'s place; False when the shared lines cannot be reached."""
        ...

    async def wait_first(
        self,
        line: str,
        member: int,
        *,
        settled_only: bool = False,
        on_wait: OnWait | None = None,
    ) -> bool | None:
        """Until `member` is first; whether it waited, None when they cannot be reached."""
        ...

    async def leave(self, line: str, member: int) -> None: ...


def line_name(key: Hashable) -> str:
    """The same name on every replica for one conversation (a key is a tuple of numbers)."""
    if isinstance(key, tuple):
        return ":".join("-" if part is None else str(part) for part in key)
    return str(key)


@dataclass
class _Line:
    """Who holds one conversation, and who waits for it, first come first served."""

    held: bool = False
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class ConversationTurns:
    """The conversations whose turn is being answered, and the turns waiting for them."""

    def __init__(self) -> None:
        self._lines: dict[Hashable, _Line] = {}
        self._shared: SharedTurns | None = None

    def share(self, shared: SharedTurns) -> None:
        """Wait in line with the other replicas' turns too."""
        self._shared = shared

    @asynccontextmanager
    async def turn(
        self, key: Hashable, *, on_wait: OnWait | None = None, place: int | None = None
    ) -> AsyncIterator[bool]:
        """Hold this conversation for one turn; yields whether it had to wait for another.

        A turn that must wait takes its place in line before anything else, then calls
        `on_wait` (the lifecycle lets the chat's other updates reply meanwhile). One
        cancelled while it waits leaves the line as if it never came; one cancelled as
        its turn came passes it on. `place` is the update's number: shared with other
        replicas, the line goes by it (the local line goes by arrival here).
        """
        shared = self._shared if place is not None else None
        if shared is not None and place is not None and await shared.join(name := line_name(key), place):
            try:
                waited = await shared.wait_first(name, place, on_wait=on_wait)
                if waited is not None:
                    yield waited
                    return
            finally:
                await shared.leave(name, place)
        async with self._local_turn(key, on_wait) as waited:
            yield waited

    @asynccontextmanager
    async def _local_turn(self, key: Hashable, on_wait: OnWait | None) -> AsyncIterator[bool]:
        line = self._lines.setdefault(key, _Line())
        waited = line.held
        if not waited:
            line.held = True
        else:
            mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            line.waiting.append(mine)
            try:
                if on_wait is not None:
                    await on_wait()
                await mine
            except BaseException:
                if mine.done() and not mine.cancelled():
                    self._pass_on(key, line)
                else:
                    mine.cancel()
                    if mine in line.waiting:
                        line.waiting.remove(mine)
                raise
        try:
            yield waited
        finally:
            self._pass_on(key, line)

    def _pass_on(self, key: Hashable, line: _Line) -> None:
        """The next in line holds the conversation now; nobody waiting: it is free."""
        while line.waiting:
            following = line.waiting.popleft()
            if not following.done():
                following.set_result(None)
                return
        line.held = False
        if self._lines.get(key) is line:
            del self._lines[key]
