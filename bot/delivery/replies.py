"""Sending replies: HTML, split at Telegram's limit, in arrival order per chat."""

from __future__ import annotations

import logging

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode

from bot.delivery.markup import split_message
from bot.delivery.order import current_ticket

log = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


async def reply_html(
    message: Message, markup: str, *, keyboard: InlineKeyboardMarkup | None = None
) -> Message:
    """Reply with HTML, split into several messages when long; returns the first one.

    The first message waits for this chat's earlier updates to reply first.
    The keyboard, if any, goes on the last part, where the reader ends up.
    """
    ticket = current_ticket()
    if ticket is not None:
        await ticket.wait_turn()
    parts = split_message(markup)
    first: Message | None = None
    for index, part in enumerate(parts):
        sent = await message.reply_html(
            part,
            do_quote=index == 0,
            link_preview_options=_NO_PREVIEW,
            reply_markup=keyboard if index == len(parts) - 1 else None,
        )
        first = first or sent
        if ticket is not None:
            await ticket.release()
    assert first is not None
    return first


async def edit_html(
    message: Message, markup: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    await message.edit_text(
        markup, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW, reply_markup=keyboard
    )
