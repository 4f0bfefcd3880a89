"""Streaming a generation into one message: a placeholder edited as tokens arrive.

The pool calls `update(text)` on the event loop each time the text grows; a
background task edits the message whenever the chat's pace allows, always
with the newest text, so edits that come too fast merge into the next one.
The final edit holds the whole formatted result (split into further messages
if it is long) and drops the Stop button.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.delivery.markup import TELEGRAM_LIMIT, cut_to
from bot.delivery.replies import edit_html, send_whole
from handlers.turn import Turn

log = logging.getLogger(__name__)

STREAM_TAIL = TELEGRAM_LIMIT - 200


def stop_keyboard(turn: Turn) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(turn.t("stream.stop"), callback_data=f"stop:{turn.owner_id}")]]
    )


class StreamingReply:
    """One streamed answer: owns its placeholder message until the final edit."""

    def __init__(self, turn: Turn, message: Message, prompt: str) -> None:
        self._turn = turn
        self._message = message
        self._prompt = prompt
        self._latest: str | None = None
        self._shown: str | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._edit_loop())

    @classmethod
    async def open(cls, turn: Turn, prompt: str) -> StreamingReply:
        placeholder = await turn.reply(turn.t("stream.placeholder"), stop_keyboard(turn))
        turn.services.edit_pacer.sent(placeholder.chat_id)
        return cls(turn, placeholder, prompt)

    def update(self, text: str) -> None:
        """The generation so far (prompt included); cheap, called for every new token."""
        self._latest = text
        self._changed.set()

    async def _edit_loop(self) -> None:
        pacer = self._turn.services.edit_pacer
        while True:
            await self._changed.wait()
            await pacer.slot(self._message.chat_id)
            self._changed.clear()
            text = self._latest
            if text is None or text == self._shown:
                continue
            await self._edit(self._draft(text), stop_keyboard(self._turn))
            self._shown = text

    def _draft(self, text: str) -> str:
        body = text[len(self._prompt) :] if text.startswith(self._prompt) else text
        head = html.escape(self._prompt) if text.startswith(self._prompt) else ""
        markup = f"<blockquote><b>{head}</b>{html.escape(body)} ▍</blockquote>"
        return (
            markup
            if len(markup) <= STREAM_TAIL
            else f"<blockquote>…{html.escape(text[-STREAM_TAIL // 2 :])} ▍</blockquote>"
        )

    async def _edit(self, markup: str, keyboard: InlineKeyboardMarkup | None) -> None:
        try:
            await edit_html(self._message, markup, keyboard)
            self._turn.services.edit_pacer.sent(self._message.chat_id)
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise

    async def _stop_editing(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def message(self) -> Message:
        """The message the answer streams into (its first message once finished)."""
        return self._message

    @property
    def shown(self) -> str:
        """What has been generated so far, without the prompt: what stays if it stops here."""
        text = self._latest or ""
        return text[len(self._prompt) :] if text.startswith(self._prompt) else text

    async def finish(self, markup: str) -> None:
        """The final edit: the whole result; what does not fit follows as new messages.

        Past the bot's message limit the rest is cut and the whole answer sent as a file.
        """
        await self._stop_editing()
        long = self._turn.long_replies
        (first, *rest), cut = cut_to(markup, long.max_messages)
        await self._turn.services.edit_pacer.slot(self._message.chat_id)
        await self._edit(first, None)
        for part in rest:
            await self._message.reply_html(part, do_quote=False)
        if cut:
            await send_whole(self._message, markup, long.cut_note)

    async def stopped(self) -> None:
        """Cancelled: keep what was generated, marked as stopped, without the button."""
        await self._stop_editing()
        text = self._latest or self._prompt
        kept = self._draft(text).replace(" ▍</blockquote>", "</blockquote>")
        await self._turn.services.edit_pacer.slot(self._message.chat_id)
        await self._edit(f"{kept}\n{self._turn.t('result.stopped')}", None)

    async def failed(self, markup: str) -> None:
        """An error after the placeholder went out: what was written stays, the error line after it.

        Before any text arrived, the placeholder simply becomes the error line.
        """
        await self._stop_editing()
        if self._latest is None:
            await self._edit(markup, None)
            return
        kept = self._draft(self._latest).replace(" ▍</blockquote>", "</blockquote>")
        await self._turn.services.edit_pacer.slot(self._message.chat_id)
        await self._edit(f"{kept}\n{markup}", None)
