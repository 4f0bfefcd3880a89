"""Photos in a conversation: which photo a turn is about, and the pictures a model that
sees is shown.

A photo (or an image sent as a file) with a caption in a private chat, or the
photo a `/chat <question>` replies to, goes with that turn. The conversation
keeps it as Telegram's `file_id` (`models.conversation`), never the bytes; each
turn downloads again, through the Bot API and only once the model passed
vetting, the newest `IMAGES_SHOWN` photos of the conversation (a model encodes
every picture it is shown at every turn, so older ones are only named, as
`bot.engine.chat` does). A photo Telegram no longer serves is named instead.

Which model sees them is the engine's business: a text-only chat model refuses
a new photo in one line that names a model that sees (`ImagesNotSupported`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from telegram import Message
from telegram.error import TelegramError
from telegram.ext import filters

from bot.engine import (
    IMAGE_PLACEHOLDER,
    IMAGES_SHOWN,
    ChatMessage,
    ChatPrompt,
    ImageBytes,
    MediaLimits,
)
from bot.errors import UserFacingError
from handlers.request.media_input import CAPTION_COMMAND, MediaFile, download, image_in
from handlers.request.turn import Turn
from models.conversation import Turn as StoredTurn

log = logging.getLogger(__name__)

# A photo or image file with words of its own (not a command) in a private chat: a turn.
PRIVATE_PHOTO_TALK = (
    filters.ChatType.PRIVATE
    & (filters.PHOTO | filters.Document.IMAGE)
    & filters.CAPTION
    & ~CAPTION_COMMAND
)


def photo_of_turn(message: Message, limits: MediaLimits) -> MediaFile | None:
    """The photo a conversation turn is about: its own, else the one it replies to."""
    found = image_in(message, limits) or image_in(message.reply_to_message, limits)
    if found is not None:
        limits.check_file_size(found.file_size)
    return found


def has_pictures(turns: Sequence[StoredTurn]) -> bool:
    return any(stored.image_file_id for stored in turns)


async def pictured_prompt(
    turn: Turn,
    system: str | None,
    turns: Sequence[StoredTurn],
    text: str,
    photo: MediaFile | None,
    limits: MediaLimits,
) -> ChatPrompt:
    """The conversation with its newest `IMAGES_SHOWN` photos downloaded, the rest named."""
    left = IMAGES_SHOWN
    new: tuple[ImageBytes, ...] = ()
    if photo is not None:
        new = (_image(await download(turn.context.bot, photo, limits), limits),)
        left -= 1
    history: list[ChatMessage] = []
    for stored in reversed(turns):
        role: Literal["user", "assistant"] = "assistant" if stored.role == "assistant" else "user"
        image = None
        if stored.image_file_id and left > 0:
            image = await _earlier_photo(turn, stored.image_file_id, limits)
        if image is not None:
            left -= 1
            history.append(ChatMessage(role, stored.content, (image,)))
        elif stored.image_file_id:
            history.append(ChatMessage(role, f"{IMAGE_PLACEHOLDER} {stored.content}"))
        else:
            history.append(ChatMessage(role, stored.content))
    return ChatPrompt(system, tuple(reversed(history)), text, new)


async def _earlier_photo(turn: Turn, file_id: str, limits: MediaLimits) -> ImageBytes | None:
    """A photo of an earlier turn, downloaded again; None (then it is named) if it is gone."""
    try:
        return _image(await download(turn.context.bot, MediaFile(file_id, None), limits), limits)
    except (TelegramError, UserFacingError) as error:
        log.info("an earlier photo of a conversation could not be read again: %s", error)
        return None


def _image(data: bytes, limits: MediaLimits) -> ImageBytes:
    return ImageBytes(data, limits.max_image_pixels, limits.max_image_bytes)
