"""One answer shape: how an answer reaches a person, whatever the way it is shown.

The lifecycle (`handlers.request.lifecycle`) runs every model command the same
way and hands what happens to a `PendingAnswer`: what the pool reports while it
works (a place in line, text as it grows), then exactly one ending — the
answer, an error the person is told about, or a crash. Each way an answer
reaches a person is one implementation:

- `RepliedAnswer`: a plain reply; what a request has before it is read and
  queued (a refusal by the rate limit or the quota is just a reply).
- `QueuedAnswer`: a status line while the request waits, edited into the answer.
- `StreamedAnswer`: a draft or an edited placeholder that shows the place in line
  while the request waits, then the text as it is written; a stop or an error keeps
  what was written.

An answer that is a file (a picture, a voice note) is one more implementation:
`finish` gets the typed result as well as its caption.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from telegram import Message

from bot.engine import Caller
from bot.errors import Cancelled, UserFacingError
from handlers.request.queue_status import QueueStatus
from handlers.request.streaming import StreamingReply, StreamMode
from handlers.request.turn import Turn

TextCallback = Callable[[str], None]


class PendingAnswer(Protocol):
    """An answer on its way: told what the pool reports, then how the request ended."""

    @property
    def on_text(self) -> TextCallback | None:
        """Where text goes as the model writes it; None where it is shown whole."""
        ...

    @property
    def shown(self) -> str:
        """What the person already saw of the answer (a stopped stream keeps it)."""
        ...

    def watching(self) -> AbstractAsyncContextManager[Caller]:
        """While the pool has the request: the caller to submit with (owner, place in line)."""
        ...

    async def finish(self, markup: str, result: object) -> Message | None:
        """Show the answer; returns the message that shows it, if it is a message."""
        ...

    async def fail(self, markup: str, error: UserFacingError) -> Message | None:
        """Tell the person what went wrong (`markup` is the error in their language)."""
        ...

    async def crash(self, markup: str) -> None:
        """An unexpected error: leave nothing half-shown (the error handler says the rest)."""
        ...


class RepliedAnswer:
    """A plain reply: a request's answer before it has anywhere else to go."""

    on_text: TextCallback | None = None
    shown = ""

    def __init__(self, turn: Turn, *, shareable: bool = True) -> None:
        self._turn = turn
        self._shareable = shareable

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Caller]:
        yield Caller(owner=self._turn.owner_id)

    async def finish(self, markup: str, result: object) -> Message:
        return await self._turn.reply(markup, shareable=self._shareable)

    async def fail(self, markup: str, error: UserFacingError) -> Message:
        return await self._turn.reply(markup, shareable=True)

    async def crash(self, markup: str) -> None:
        return None


class QueuedAnswer:
    """A status line with the place in line while the request waits, then the answer in it.

    An answer that is part of a conversation is never shared with others in a busy
    group: a reply to it must continue that conversation.
    """

    on_text: TextCallback | None = None
    shown = ""

    def __init__(self, turn: Turn, *, shareable: bool) -> None:
        self._status = QueueStatus(turn)
        self._shareable = shareable

    def watching(self) -> AbstractAsyncContextManager[Caller]:
        return self._status.watching()

    async def finish(self, markup: str, result: object) -> Message:
        return await self._status.replace(markup, shareable=self._shareable)

    async def fail(self, markup: str, error: UserFacingError) -> Message:
        return await self._status.replace(markup, shareable=True)

    async def crash(self, markup: str) -> None:
        return None


class StreamedAnswer:
    """The text shown as it is written (a draft, or a placeholder edited at the chat's pace)."""

    def __init__(self, turn: Turn, stream: StreamingReply) -> None:
        self._turn = turn
        self._stream = stream

    @classmethod
    async def open(cls, turn: Turn, prompt: str, mode: StreamMode) -> StreamedAnswer:
        return cls(turn, await StreamingReply.open(turn, prompt, mode))

    @property
    def on_text(self) -> TextCallback:
        return self._stream.update

    @property
    def shown(self) -> str:
        return self._stream.shown

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Caller]:
        """The place in line shows where the words will, until they come."""
        yield Caller(owner=self._turn.owner_id, on_position=self._stream.moved)

    async def finish(self, markup: str, result: object) -> Message | None:
        await self._stream.finish(markup)
        return self._stream.message

    async def fail(self, markup: str, error: UserFacingError) -> Message | None:
        if isinstance(error, Cancelled):
            await self._stream.stopped()
        else:
            await self._stream.failed(markup)
        return self._stream.message

    async def crash(self, markup: str) -> None:
        await self._stream.failed(markup)
