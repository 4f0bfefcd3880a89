"""Answers that are ready for one group at the same moment share one message.

Telegram lets a bot send one message a second into a chat and 20 a minute
into a group. When sixty people in a group ask at once, sixty separate
replies would take three minutes to go out, however fast the model answered.
So a group's short answers go through one outbox per chat: the first goes at
once as an ordinary reply; whatever became ready while it was on its way
goes next as one message, each answer under a quote of the person who asked
it, in the order they asked. In a forum each topic has its outbox: an answer
stays in the topic it was asked in.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, field

from telegram import LinkPreviewOptions, Message

from bot.delivery.markup import split_message
from bot.delivery.order import current_ticket

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
QUOTE_CHARS = 80


@dataclass
class _Answer:
    message: Message
    markup: str
    asker: str
    sent: asyncio.Future[Message]

    def quoted(self) -> str:
        """The answer under a quote of who asked what, for a shared message."""
        question = self.message.text or self.message.caption or ""
        if len(question) > QUOTE_CHARS:
            question = question[: QUOTE_CHARS - 1] + "…"
        quote = f"{self.asker}: {question}" if question else self.asker
        return f"<blockquote>{html.escape(quote)}</blockquote>\n{self.markup}"


@dataclass
class _Outbox:
    waiting: list[_Answer] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None


class SharedAnswers:
    """One outbox per group (see module doc); a quiet group's answers go out one by one."""

    def __init__(self) -> None:
        self._outboxes: dict[tuple[int, int | None], _Outbox] = {}
        self.shared_messages = 0
        self.answers_shared = 0

    @staticmethod
    def fits(markup: str) -> bool:
        """Only an answer that fits in one message can share one."""
        return len(split_message(markup)) == 1

    async def reply(self, message: Message, markup: str, asker: str) -> Message:
        """Send `markup` as the answer to `message`, perhaps sharing a message with other
        answers; returns the message it went out in. Takes its place in the chat's reply
        order like any reply, and lets the next answer queue up behind it at once."""
        ticket = current_ticket()
        if ticket is not None:
            await ticket.wait_turn()
        where = (message.chat_id, message.message_thread_id if message.is_topic_message else None)
        outbox = self._outboxes.setdefault(where, _Outbox())
        answer = _Answer(message, markup, asker, asyncio.get_running_loop().create_future())
        outbox.waiting.append(answer)
        if outbox.sender is None:
            outbox.sender = asyncio.create_task(self._send_all(where, outbox))
        if ticket is not None:
            await ticket.release(until_sent=True)
        try:
            return await asyncio.shield(answer.sent)
        finally:
            if ticket is not None:
                await ticket.sent()

    async def _send_all(self, where: tuple[int, int | None], outbox: _Outbox) -> None:
        """Until the outbox is empty: everything waiting that fits in one message goes."""
        try:
            while outbox.waiting:
                batch = self._take(outbox)
                try:
                    sent = await self._send(batch)
                except Exception as error:  # each waiting handler reports it as its own
                    for answer in batch:
                        answer.sent.set_exception(error)
                    continue
                for answer in batch:
                    answer.sent.set_result(sent)
        finally:
            if self._outboxes.get(where) is outbox:
                del self._outboxes[where]

    def _take(self, outbox: _Outbox) -> list[_Answer]:
        batch = [outbox.waiting.pop(0)]
        while outbox.waiting and self.fits(
            "\n\n".join(answer.quoted() for answer in [*batch, outbox.waiting[0]])
        ):
            batch.append(outbox.waiting.pop(0))
        return batch

    async def _send(self, batch: list[_Answer]) -> Message:
        first = batch[0]
        if len(batch) == 1:
            return await first.message.reply_html(
                first.markup, do_quote=True, link_preview_options=_NO_PREVIEW
            )
        self.shared_messages += 1
        self.answers_shared += len(batch)
        return await first.message.reply_html(
            "\n\n".join(answer.quoted() for answer in batch),
            do_quote=True,
            link_preview_options=_NO_PREVIEW,
        )
