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
- `InlineAnswer`: one article of an inline query's answer; the query is answered
  once all its articles have ended, so finishing only keeps the article.
- `PictureAnswer`: a status line that says the step being drawn, with a Stop button,
  then the picture (sendPhoto) with its caption.
- `VoiceAnswer`: a status line while it waits, then the voice note (sendVoice).

The two file answers get the typed result (`bot.tasks.Picture`, `bot.tasks.VoiceNote`)
as well as its caption; a status line cannot be edited into a file, so it goes once
the file is sent, and an error takes its place instead.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import ClassVar, Protocol

from telegram import (
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    Message,
)
from telegram.constants import ParseMode

from bot.delivery.replies import reply_photo, reply_voice
from bot.engine import Caller
from bot.errors import Cancelled, UserFacingError
from bot.tasks import Output, Picture, VoiceNote
from handlers.request.queue_status import QueueStatus, WorkLines
from handlers.request.streaming import StreamingReply, StreamMode
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

TextCallback = Callable[[str], None]
# An inline article from (the result, the query's text, the answer's markup): its title,
# its description, and the message it sends when picked.
Describe = Callable[[Output, str, str], "InlineArticle"]
# Telegram shows this much of an article's description.
_DESCRIPTION_CHARS = 200


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

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        """Show the answer (with `keyboard` under it); returns the message that shows it, if
        it is a message."""
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

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message:
        return await self._turn.reply(markup, keyboard, shareable=self._shareable)

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

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message:
        return await self._status.replace(markup, shareable=self._shareable, keyboard=keyboard)

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

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message | None:
        await self._stream.finish(markup, keyboard)
        return self._stream.message

    async def fail(self, markup: str, error: UserFacingError) -> Message | None:
        if isinstance(error, Cancelled):
            await self._stream.stopped()
        else:
            await self._stream.failed(markup)
        return self._stream.message

    async def crash(self, markup: str) -> None:
        await self._stream.failed(markup)


@dataclass(frozen=True)
class InlineArticle:
    title: str
    description: str
    markup: str


class InlineAnswer:
    """One article of an inline query's answer (there is no chat to show progress in).

    A refusal or a failure leaves the article out: the query answers with what could
    be computed, never with an error.
    """

    on_text: TextCallback | None = None
    shown = ""

    def __init__(self, turn: Turn, text: str, describe: Describe) -> None:
        self._turn = turn
        self._text = text
        self._describe = describe
        self.article: InlineQueryResultArticle | None = None

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Caller]:
        yield Caller(owner=self._turn.owner_id)

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> None:
        """An article has no buttons of its own: a conversation's ↻ never comes here."""
        article = self._describe(result, self._text, markup)
        self.article = InlineQueryResultArticle(
            id=uuid.uuid4().hex,
            title=article.title,
            description=article.description[:_DESCRIPTION_CHARS],
            input_message_content=InputTextMessageContent(
                article.markup, parse_mode=ParseMode.HTML
            ),
        )

    async def fail(self, markup: str, error: UserFacingError) -> None:
        log.info("an inline article was left out: %s", error.key)

    async def crash(self, markup: str) -> None:
        return None


class FileAnswer:
    """An answer that is a file: the queue's status line (for work in steps, kept while it
    runs, saying the step, with Stop), then the file as a reply, and the line goes."""

    on_text: TextCallback | None = None
    shown = ""
    # The status line's messages while the work runs; None: a queue line only.
    working: ClassVar[WorkLines | None] = None

    def __init__(self, turn: Turn) -> None:
        self._turn = turn
        self._status = QueueStatus(turn, working=self.working)

    def watching(self) -> AbstractAsyncContextManager[Caller]:
        return self._status.watching()

    async def finish(
        self, markup: str, result: Output, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message:
        """A file goes without buttons: ↻ belongs to conversation answers, which are text."""
        sent = await self.send(markup, result)
        await self._status.remove()
        return sent

    async def send(self, markup: str, result: Output) -> Message:
        raise NotImplementedError

    async def fail(self, markup: str, error: UserFacingError) -> Message:
        return await self._status.replace(markup, shareable=True)

    async def crash(self, markup: str) -> None:
        await self._status.remove()


class PictureAnswer(FileAnswer):
    """A picture (sendPhoto), the prompt and what draws it again as its caption."""

    working = WorkLines("picture.drawing", "picture.drawing_step")

    async def send(self, markup: str, result: Output) -> Message:
        assert isinstance(result, Picture), "the text-to-image runner answers with a Picture"
        return await reply_photo(self._turn.message, result.png, markup, filename="picture.png")


class VoiceAnswer(FileAnswer):
    """A voice note (sendVoice) as long as the speech, its caption (if any) under it."""

    async def send(self, markup: str, result: Output) -> Message:
        assert isinstance(result, VoiceNote), "the text-to-speech runner answers with a VoiceNote"
        return await reply_voice(self._turn.message, result.ogg, result.seconds, markup)
