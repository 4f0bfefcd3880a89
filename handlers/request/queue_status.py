"""A visible place in line: one status line for a request that waits, replaced by the answer.

A request still waiting for the model after `queue_status_after_s` gets one
message with its place ("#4 in line", or, while the model's first load exports
it to ONNX Runtime, that it is being prepared), edited as the line moves, at the chat's
edit pace and as a streaming update (answers go out first), and finally edited
into the answer itself, so waiting costs the chat one message, not two. The
pool reports positions through a callback; nothing polls it.

In a group every message counts against Telegram's 20 a minute that answers
need, so a status line is only sent while the group has at least half of that
budget to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from telegram import InlineKeyboardMarkup, Message
from telegram.error import TelegramError

from bot.delivery.outbound import Priority
from bot.delivery.replies import edit_html, quote_html, replace_html
from bot.engine import Caller
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

GROUP_SPARE_NEEDED = 0.5


class QueueStatus:
    """The status line of one request, from its first wait to the answer that replaces it."""

    def __init__(self, turn: Turn) -> None:
        self._turn = turn
        self._position: int | None = None
        self._moved = asyncio.Event()
        self._finished = False
        self._sending = False
        self._task: asyncio.Task[None] | None = None
        self.message: Message | None = None

    def moved(self, position: int) -> None:
        """The pool's callback: the request's place in line (0 once its batch runs)."""
        self._position = position
        self._moved.set()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[Caller]:
        """While the request is in the pool: the caller to submit with, and the status line."""
        self._task = asyncio.create_task(self._show())
        try:
            yield Caller(owner=self._turn.owner_id, on_position=self.moved)
        finally:
            await self._stop()

    async def replace(
        self, markup: str, *, shareable: bool, keyboard: InlineKeyboardMarkup | None = None
    ) -> Message:
        """Show the answer: in place of the status line when there is one, else as a reply."""
        if self.message is not None:
            shown = await replace_html(self.message, markup, keyboard)
            if shown is not None:
                return shown
        return await self._turn.reply(markup, keyboard, shareable=shareable)

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
        if not self._worth_showing():
            return
        shown = self._position
        try:
            self._sending = True
            try:
                self.message = await quote_html(
                    self._turn.message, self._text(shown), priority=Priority.STREAM
                )
            finally:
                self._sending = False
            pacer = self._turn.services.edit_pacer
            pacer.sent(self._turn.message.chat_id)
            while not self._finished:
                await self._moved.wait()
                self._moved.clear()
                if self._finished or self._position in (shown, 0, None):
                    continue
                await pacer.slot(self._turn.message.chat_id)
                shown = self._position
                if not self._finished:
                    await edit_html(self.message, self._text(shown), priority=Priority.STREAM)
        except TelegramError as error:
            log.info("queue status line not shown or updated: %s", error)

    def _worth_showing(self) -> bool:
        """Still waiting (not yet running), and where a message costs no answer its slot."""
        if self._finished or not self._position:
            return False
        return self._turn.in_private or self._turn.budget_spare >= GROUP_SPARE_NEEDED

    def _text(self, position: int | None) -> str:
        """The place in line."""
        return self._turn.t("queue.position", position=position)
