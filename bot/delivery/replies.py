"""Sending replies: HTML, split at Telegram's limit, in arrival order per chat."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from telegram import (
    InlineKeyboardMarkup,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import ExtBot

from bot.delivery.markup import cut_to, plain_text, split_message
from bot.delivery.order import current_ticket
from bot.delivery.outbound import Priority

log = logging.getLogger(__name__)

_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


@dataclass(frozen=True)
class LongReplies:
    """How far a reply may run: at most `max_messages`, then `cut_note` and the whole as a file."""

    max_messages: int = 3
    cut_note: str = ""


async def reply_html(
    message: Message,
    markup: str,
    *,
    keyboard: InlineKeyboardMarkup | None = None,
    long: LongReplies = LongReplies(),
) -> Message:
    """Reply with HTML, split into several messages when long; returns the first one.

    The first message waits for this chat's earlier updates to reply first.
    The keyboard, if any, goes on the last part, where the reader ends up. An
    answer longer than `long.max_messages` messages is cut, and its whole text
    follows as a file, so one result never floods a chat.
    """
    ticket = current_ticket()
    if ticket is not None:
        await ticket.wait_turn()
    parts, cut = cut_to(markup, long.max_messages)
    first: Message | None = None
    for index, part in enumerate(parts):
        last = index == len(parts) - 1 and not cut
        sent = await message.reply_html(
            part,
            do_quote=index == 0,
            link_preview_options=_NO_PREVIEW,
            reply_markup=keyboard if last else None,
        )
        first = first or sent
        if ticket is not None:
            await ticket.release()
    if cut:
        await send_whole(message, markup, long.cut_note, keyboard)
    assert first is not None
    return first


async def reply_photo(
    message: Message, png: bytes, caption_markup: str, *, filename: str = "stats.png"
) -> Message:
    """Reply with a picture and an HTML caption, in this chat's reply order.

    A picture Telegram will not take as a photo (over its 10 MB, or sides past its
    10,000 px in all) goes as a file instead, which keeps every pixel.
    """
    ticket = current_ticket()
    if ticket is not None:
        await ticket.wait_turn()
    try:
        sent = await message.reply_photo(
            InputFile(png, filename=filename),
            caption=caption_markup,
            parse_mode=ParseMode.HTML,
            do_quote=True,
        )
    except BadRequest as error:
        log.info("picture refused as a photo (%s); sending it as a file", error)
        sent = await message.reply_document(
            InputFile(png, filename=filename),
            caption=caption_markup,
            parse_mode=ParseMode.HTML,
            do_quote=True,
        )
    if ticket is not None:
        await ticket.release()
    return sent


async def reply_voice(
    message: Message, ogg: bytes, seconds: float, caption_markup: str = ""
) -> Message:
    """Reply with a voice note (OGG/Opus) of `seconds`, in this chat's reply order."""
    ticket = current_ticket()
    if ticket is not None:
        await ticket.wait_turn()
    sent = await message.reply_voice(
        InputFile(ogg, filename="voice.ogg"),
        duration=max(1, math.ceil(seconds)),
        caption=caption_markup or None,
        parse_mode=ParseMode.HTML if caption_markup else None,
        do_quote=True,
    )
    if ticket is not None:
        await ticket.release()
    return sent


async def send_whole(
    message: Message, markup: str, note: str, keyboard: InlineKeyboardMarkup | None = None
) -> None:
    """The whole of a cut answer, as a text file after its first messages."""
    whole = InputFile(plain_text(markup).encode("utf-8"), filename="answer.txt")
    await message.reply_document(
        whole, caption=note, parse_mode=ParseMode.HTML, do_quote=False, reply_markup=keyboard
    )


async def edit_html(
    message: Message,
    markup: str,
    keyboard: InlineKeyboardMarkup | None = None,
    *,
    priority: Priority = Priority.ANSWER,
) -> None:
    """Edit a bot message; `priority` says whether it is an answer or a streaming update."""
    bot = message.get_bot()
    if isinstance(bot, ExtBot):
        await bot.edit_message_text(
            markup,
            chat_id=message.chat_id,
            message_id=message.message_id,
            parse_mode=ParseMode.HTML,
            link_preview_options=_NO_PREVIEW,
            reply_markup=keyboard,
            rate_limit_args=priority,
        )
        return
    await message.edit_text(
        markup, parse_mode=ParseMode.HTML, link_preview_options=_NO_PREVIEW, reply_markup=keyboard
    )


async def quote_html(
    message: Message,
    markup: str,
    *,
    priority: Priority,
    keyboard: InlineKeyboardMarkup | None = None,
) -> Message:
    """Reply outside this chat's reply order, at `priority`: for a status line, which is
    not an answer and must not wait for earlier answers."""
    bot = message.get_bot()
    if isinstance(bot, ExtBot):
        return await bot.send_message(
            message.chat_id,
            markup,
            parse_mode=ParseMode.HTML,
            link_preview_options=_NO_PREVIEW,
            reply_parameters=ReplyParameters(message.message_id, allow_sending_without_reply=True),
            message_thread_id=message.message_thread_id if message.is_topic_message else None,
            reply_markup=keyboard,
            rate_limit_args=priority,
        )
    return await message.reply_html(
        markup, do_quote=True, link_preview_options=_NO_PREVIEW, reply_markup=keyboard
    )


async def replace_html(status: Message, markup: str) -> Message | None:
    """Turn a status message into the answer, in this chat's reply order, when the answer
    fits one message; otherwise (or if the status is gone) remove it and return None, and
    the caller replies as usual."""
    if len(split_message(markup)) == 1:
        ticket = current_ticket()
        if ticket is not None:
            await ticket.wait_turn()
        try:
            await edit_html(status, markup)
        except TelegramError as error:
            log.info("status message could not become the answer (%s); replying instead", error)
        else:
            if ticket is not None:
                await ticket.release()
            return status
    try:
        await status.delete()
    except TelegramError:
        log.debug("status message already gone", exc_info=True)
    return None
