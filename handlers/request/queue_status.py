"""A visible place in line: one status line for a request that waits, replaced by the answer.

A request still waiting for the model after `queue_status_after_s` gets one
message with its place ("#4 in line", or, while the model's first load exports
it to ONNX Runtime, that it is being prepared), edited as the line moves, at the chat's
edit pace and as a streaming update (answers go out first), and finally edited
into the answer itself, so waiting costs the chat one message, not two. The
pool reports positions through a callback; nothing polls it.

A request that works in steps (a picture) keeps its line while it runs: the
line says the step the pool reports (`on_progress`), edited at the same pace,
with a Stop button, since such work takes long enough to want stopping.

In a group every message counts against Telegram's 20 a minute that answers
need, so a status line is only sent while the group has at least half of that
budget to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from telegram import Message
from telegram.error import TelegramError

from bot.delivery.outbound import Priority
from bot.delivery.replies import edit_html, quote_html, replace_html
from bot.engine import Caller
from handlers.request.streaming import stop_keyboard
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

GROUP_SPARE_NEEDED = 0.5


@dataclass(frozen=True)
class WorkLines:
    """The message keys of a status line while work in steps runs: before its first step
    is done, then with `step` and `steps`."""

    started: str
    step: str


class QueueStatus:
    """The status line of one request, from its first wait to the answer that replaces it.

    `working`, when set, says the lines shown while the request runs; without it the line
    shows the place in line only.
    """

    def __init__(self, turn: Turn, *, working: WorkLines | None = None) -> None:
        self._turn = turn
        self._working = working
        self._position: int | None = None
        self._progress: tuple[int, int] | None = None
        self._moved = asyncio.Event()
        self._finished = False
        self._sending = False
        self._task: asyncio.Task[None] | None = None
        self.message: Message | None = None

    def moved(self, position: int) -> None:
        """The pool's callback: the request's place in line (0 once its batch runs)."""
        self._position = position
        self._moved.set()

    def progressed(self, done: int, total: int) -> None:
        """The pool's callback for work in steps: `done` of `total` steps are done."""
        self._progress = (done, total)
        self._moved.set()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Caller]:
        """While the request is in the pool: the caller to submit with, and the status line."""
        self._task = asyncio.create_task(self._show())
        try:
            yield Caller(
                owner=self._turn.owner_id,
                on_position=self.moved,
                on_progress=self.progressed if self._working is not None else None,
            )
        finally:
            await self._stop()

    async def replace(self, markup: str, *, shareable: bool) -> Message:
        """Show the answer: in place of the status line when there is one, else as a reply."""
        if self.message is not None:
            shown = await replace_html(self.message, markup)
            if shown is not None:
                return shown
        return await self._turn.reply(markup, shareable=shareable)

    async def remove(self) -> None:
        """Take the status line away (the answer is a file, which no text edit can become)."""
        if self.message is None:
            return
        try:
            await self.message.delete()
        except TelegramError:
            log.debug("status line already gone", exc_info=True)
        self.message = None

    async def _stop(self) -> None:
        """The watcher is cancelled, except while it sends the status line: that send is let
        finish, so no status line is left behind that the answer does not replace."""
        self._finished = True
        self._moved.set()
        assert self._task is not None
        if not self._sending:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _show(self) -> None:
        await asyncio.sleep(self._turn.services.settings.queue_status_after_s)
        shown = self._text()
        if not self._worth_showing() or shown is None:
            return
        keyboard = stop_keyboard(self._turn) if self._working is not None else None
        try:
            self._sending = True
            try:
                self.message = await quote_html(
                    self._turn.message, shown, priority=Priority.STREAM, keyboard=keyboard
                )
            finally:
                self._sending = False
            pacer = self._turn.services.edit_pacer
            pacer.sent(self._turn.message.chat_id)
            while not self._finished:
                await self._moved.wait()
                self._moved.clear()
                if self._finished or self._text() in (shown, None):
                    continue
                await pacer.slot(self._turn.message.chat_id)
                latest = self._text()
                if not self._finished and latest is not None and latest != shown:
                    shown = latest
                    await edit_html(self.message, shown, keyboard, priority=Priority.STREAM)
        except TelegramError as error:
            log.info("queue status line not shown or updated: %s", error)

    def _worth_showing(self) -> bool:
        """Still waiting (or working in steps), and where a message costs no answer its slot."""
        if self._finished or not (self._position or self._working):
            return False
        return self._turn.in_private or self._turn.budget_spare >= GROUP_SPARE_NEEDED

    def _text(self) -> str | None:
        """The place in line; once running, the step for work in steps, else nothing new."""
        if self._position:
            return self._turn.t("queue.position", position=self._position)
        if self._working is None:
            return None
        if self._progress is None:
            return self._turn.t(self._working.started)
        done, total = self._progress
        return self._turn.t(self._working.step, step=done, steps=total)
