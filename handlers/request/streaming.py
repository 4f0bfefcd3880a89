"""Streaming a generation as it is written: Telegram's message drafts, or one edited message.

The pool calls `update(text)` on the event loop each time the text grows; a
background task shows the newest text whenever the chat's pace allows, so
updates that come too fast merge into the next one. Two ways to show it:

- `DraftStream` (private chats): Telegram's native message drafts
  (`sendMessageDraft`, Bot API 9.3) animate the answer as it is written; the
  finished answer is then sent as an ordinary message. An empty draft shows
  Telegram's "Thinking…" until the first words (Bot API 10.0), and every draft
  has Telegram's own Stop (Bot API 10.3, `bot.delivery.draft_stop`), which
  stops the generation as /cancel does. Where the Bot API server refuses drafts,
  private chats stream by edits too.
- `EditStream` (groups, or when a person chooses it): a placeholder with a ■ Stop
  button, edited at the chat's edit pace; the final edit holds the whole result.

Either way the finished, stopped or failed answer keeps what was written.
Updates go to Telegram as streaming traffic, after every waiting final answer.
A request that waits in the model's line longer than `queue_status_after_s`
shows its place ("⏳ #3 in line…") in the same draft or placeholder until the
first words replace it, so waiting costs no extra message.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import logging
import secrets
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message
from telegram.error import BadRequest

from bot.delivery.markup import TELEGRAM_LIMIT, cut_to
from bot.delivery.outbound import Priority
from bot.delivery.replies import edit_html, send_whole
from handlers.request.turn import Turn

log = logging.getLogger(__name__)

STREAM_TAIL = TELEGRAM_LIMIT - 200
# How often a draft may change: drafts replace a message being written rather than
# add messages, but a phone redrawing faster than this shows no more.
DRAFT_INTERVAL_S = 0.5
StreamMode = Literal["draft", "edit"]
# Below this share of a group's per-minute budget left, streaming edits pause for answers.
GROUP_STREAM_RESERVE = 0.25
_draft_ids = itertools.count(secrets.randbelow(2**30) + 1)


def stop_keyboard(turn: Turn) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(turn.t("stream.stop"), callback_data=f"stop:{turn.owner_id}")]]
    )


class StreamingReply:
    """One streamed answer; what both ways of showing it share."""

    def __init__(self, turn: Turn, prompt: str) -> None:
        self._turn = turn
        self._prompt = prompt
        self._latest: str | None = None
        self._shown: str | None = None
        self._position = 0
        loop = asyncio.get_running_loop()
        self._line_from = loop.time() + turn.services.settings.queue_status_after_s
        self._line_due: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._show_loop())

    @staticmethod
    async def open(turn: Turn, prompt: str, mode: StreamMode) -> StreamingReply:
        """A draft showing "Thinking…" where drafts are asked for and the server takes them;
        else a placeholder with a Stop button, edited as the text grows."""
        if mode == "draft":
            draft = await DraftStream.start(turn, prompt)
            if draft is not None:
                return draft
        placeholder = await turn.reply(turn.t("stream.placeholder"), stop_keyboard(turn))
        turn.services.edit_pacer.sent(placeholder.chat_id)
        return EditStream(turn, prompt, placeholder)

    def update(self, text: str) -> None:
        """The generation so far (prompt included); cheap, called for every new token."""
        self._latest = text
        self._changed.set()

    def moved(self, position: int) -> None:
        """The pool's callback: the place in line (0 once it runs, and the words will come).

        Shown only once the request has waited `queue_status_after_s`, as the one-shot
        commands' status line is."""
        self._position = position
        if position == 0 or self._latest is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._line_from - loop.time()
        if wait <= 0:
            self._changed.set()
        elif self._line_due is None:
            self._line_due = loop.call_later(wait, self._changed.set)

    @property
    def message(self) -> Message | None:
        """The message that shows the answer (for a draft: once it is sent)."""
        raise NotImplementedError

    @property
    def shown(self) -> str:
        """What has been generated so far, without the prompt: what stays if it stops here."""
        text = self._latest or ""
        return text[len(self._prompt) :] if text.startswith(self._prompt) else text

    async def _show_loop(self) -> None:
        while True:
            await self._changed.wait()
            if self._next() in (None, self._shown):
                self._changed.clear()
                continue
            await self._pace()
            self._changed.clear()
            markup = self._next()
            if markup is None or markup == self._shown:
                continue
            await self._show(markup)
            self._shown = markup

    def _next(self) -> str | None:
        """What the draft or placeholder should show now: the words, else the place in line."""
        if self._latest is not None:
            return self._draft(self._latest)
        if self._position and asyncio.get_running_loop().time() >= self._line_from:
            return self._turn.t("queue.position", position=self._position)
        return None

    async def _pace(self) -> None:
        raise NotImplementedError

    async def _show(self, markup: str) -> None:
        raise NotImplementedError

    def _draft(self, text: str, cursor: str = " ▍") -> str:
        body = text[len(self._prompt) :] if text.startswith(self._prompt) else text
        head = html.escape(self._prompt) if text.startswith(self._prompt) else ""
        markup = f"<blockquote><b>{head}</b>{html.escape(body)}{cursor}</blockquote>"
        return (
            markup
            if len(markup) <= STREAM_TAIL
            else f"<blockquote>…{html.escape(text[-STREAM_TAIL // 2 :])}{cursor}</blockquote>"
        )

    def _kept(self) -> str:
        """What was written so far, without the cursor."""
        return self._draft(self._latest or self._prompt, cursor="")

    async def _stop_showing(self) -> None:
        if self._line_due is not None:
            self._line_due.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def finish(self, markup: str, keyboard: InlineKeyboardMarkup | None = None) -> None:
        """The whole result, shown in place of what was being written (`keyboard` under it)."""
        raise NotImplementedError

    async def stopped(self) -> None:
        """Cancelled: keep what was generated, marked as stopped."""
        await self._stop_showing()
        await self._end(f"{self._kept()}\n{self._turn.t('result.stopped')}")

    async def failed(self, markup: str) -> None:
        """An error mid-stream: what was written stays, the error line after it."""
        await self._stop_showing()
        await self._end(markup if self._latest is None else f"{self._kept()}\n{markup}")

    async def _end(self, markup: str) -> None:
        raise NotImplementedError


class DraftStream(StreamingReply):
    """A private chat's answer as a Telegram message draft, then as the message itself."""

    def __init__(self, turn: Turn, prompt: str, draft_id: int) -> None:
        self._draft_id = draft_id
        self._sent: Message | None = None
        self._next_draft_at = 0.0
        super().__init__(turn, prompt)

    @classmethod
    async def start(cls, turn: Turn, prompt: str) -> DraftStream | None:
        """"Thinking…" at once (an empty, stoppable draft); None where the server refuses it."""
        draft_id = next(_draft_ids)
        shown = await turn.services.drafts.send(
            turn.context.bot, turn.chat.id, draft_id, "", owner=turn.owner_id
        )
        return cls(turn, prompt, draft_id) if shown else None

    @property
    def message(self) -> Message | None:
        return self._sent

    async def _pace(self) -> None:
        """The first words show at once; later drafts at most every DRAFT_INTERVAL_S."""
        loop = asyncio.get_running_loop()
        wait = self._next_draft_at - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        self._next_draft_at = loop.time() + DRAFT_INTERVAL_S

    async def _show(self, markup: str) -> None:
        """The newest text as the draft; refused mid-stream, the rest shows in the message."""
        await self._turn.services.drafts.send(
            self._turn.context.bot,
            self._turn.chat.id,
            self._draft_id,
            markup,
            owner=self._turn.owner_id,
        )

    async def finish(self, markup: str, keyboard: InlineKeyboardMarkup | None = None) -> None:
        await self._stop_showing()
        await self._send(markup, keyboard)

    async def _end(self, markup: str) -> None:
        await self._send(markup)

    async def _send(self, markup: str, keyboard: InlineKeyboardMarkup | None = None) -> None:
        """The message that ends the draft; a Stop pressed after it stops nothing."""
        try:
            self._sent = await self._turn.reply(markup, keyboard)
        finally:
            self._turn.services.drafts.ended(self._turn.chat.id, self._draft_id)


class EditStream(StreamingReply):
    """One placeholder message with a Stop button, edited as the answer grows."""

    def __init__(self, turn: Turn, prompt: str, message: Message) -> None:
        self._message = message
        super().__init__(turn, prompt)

    @property
    def message(self) -> Message:
        return self._message

    async def _pace(self) -> None:
        await self._turn.services.edit_pacer.slot(self._message.chat_id)

    async def _show(self, markup: str) -> None:
        """An edit in a group is skipped while the group's budget runs low: the final edit
        shows everything anyway, and the slot may be another person's answer."""
        if not self._turn.in_private and self._turn.budget_spare < GROUP_STREAM_RESERVE:
            return
        await self._edit(markup, stop_keyboard(self._turn), Priority.STREAM)

    async def _edit(
        self, markup: str, keyboard: InlineKeyboardMarkup | None, priority: Priority
    ) -> None:
        try:
            await edit_html(self._message, markup, keyboard, priority=priority)
            self._turn.services.edit_pacer.sent(self._message.chat_id)
        except BadRequest as error:
            if "not modified" not in str(error).lower():
                raise

    async def finish(self, markup: str, keyboard: InlineKeyboardMarkup | None = None) -> None:
        """The final edit: the whole result; what does not fit follows as new messages, the
        `keyboard` under the last.

        Past the bot's message limit the rest is cut and the whole answer sent as a file.
        """
        await self._stop_showing()
        long = self._turn.long_replies
        (first, *rest), cut = cut_to(markup, long.max_messages)
        await self._turn.services.edit_pacer.slot(self._message.chat_id)
        await self._edit(first, None if rest or cut else keyboard, Priority.ANSWER)
        for index, part in enumerate(rest):
            last = index == len(rest) - 1 and not cut
            await self._message.reply_html(
                part, do_quote=False, reply_markup=keyboard if last else None
            )
        if cut:
            await send_whole(self._message, markup, long.cut_note, keyboard)

    async def _end(self, markup: str) -> None:
        await self._turn.services.edit_pacer.slot(self._message.chat_id)
        await self._edit(markup, None, Priority.ANSWER)
