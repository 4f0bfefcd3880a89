"""Photos and sound as inputs: finding the file, downloading it, and voice notes as text.

A media command finds its file in its own message (the command is the
caption) or in the message it replies to, and hands the pool the file's bytes
(downloaded through the Bot API into memory, only once the model passed
vetting); the engine decodes them in its executor. Text commands replying to a
voice note work on its transcript (`replied_transcript`), and people who
turned `auto_transcribe` on get their private voice notes transcribed without
a command. Nothing a person sent is written to disk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from telegram import Bot, Message, MessageEntity
from telegram.ext import filters

from bot.config import Settings
from bot.engine import AudioBytes, ImageBytes, MediaLimits, pick_photo_size
from bot.errors import NoAudio, NoImage
from bot.tasks import TASKS, TaskSpec, Transcript
from handlers.request.model_call import TaskRequest, Usage, prepare_call, run_call
from handlers.request.parsing import InputLimits, candidate_labels, command_text
from handlers.request.turn import Turn

# A caption that starts with a command; which command, and for which bot, `caption_command_name` decides.
CAPTION_COMMAND = filters.CaptionRegex(r"^/\w+(?:@\w+)?(?:\s|$)")
# Voice and video notes in private chats, for people who turned auto_transcribe on.
PRIVATE_VOICE = filters.ChatType.PRIVATE & (filters.VOICE | filters.VIDEO_NOTE)


@dataclass(frozen=True)
class MediaFile:
    """A file a media command can use, with what Telegram already says about it."""

    file_id: str
    file_size: int | None
    duration: float | None = None


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits.from_megabytes(
        settings.max_file_mb,
        settings.max_image_pixels,
        settings.max_audio_seconds,
        settings.max_image_decode_mb,
    )


def image_in(message: Message | None, limits: MediaLimits) -> MediaFile | None:
    """A photo (its largest size within the caps) or an image sent as a file."""
    if message is None:
        return None
    if message.photo:
        size = pick_photo_size(message.photo, limits)
        return MediaFile(size.file_id, size.file_size)
    document = message.document
    if document is not None and (document.mime_type or "").startswith("image/"):
        return MediaFile(document.file_id, document.file_size)
    return None


def audio_in(message: Message | None, limits: MediaLimits | None = None) -> MediaFile | None:
    """A voice note, audio file, video note or video, or a sound sent as a file."""
    if message is None:
        return None
    for sound in (message.voice, message.audio, message.video_note, message.video):
        if sound is not None:
            return MediaFile(sound.file_id, sound.file_size, _seconds(sound.duration))
    document = message.document
    if document is not None and (document.mime_type or "").startswith(("audio/", "video/")):
        return MediaFile(document.file_id, document.file_size)
    return None


def _seconds(duration: int | timedelta) -> float:
    """Telegram's durations are whole seconds; PTB may hand them over as a timedelta."""
    return duration.total_seconds() if isinstance(duration, timedelta) else float(duration)


_FINDERS: dict[str, Callable[[Message | None, MediaLimits], MediaFile | None]] = {
    "image": image_in,
    "audio": audio_in,
}
_MISSING = {"image": NoImage, "audio": NoAudio}


def find_media(message: Message, spec: TaskSpec, limits: MediaLimits) -> MediaFile:
    """The command's own file (it is the caption) or the replied message's; refuse if none."""
    find = _FINDERS[spec.input_kind]
    found = find(message, limits) or find(message.reply_to_message, limits)
    if found is None:
        raise _MISSING[spec.input_kind](command=spec.name)
    limits.check_file_size(found.file_size)
    limits.check_duration(found.duration)
    return found


async def download(bot: Bot, media: MediaFile, limits: MediaLimits) -> bytes:
    """The file's bytes, in memory only: getFile, then the configured Bot API file URL."""
    telegram_file = await bot.get_file(media.file_id)
    limits.check_file_size(telegram_file.file_size)
    data = bytes(await telegram_file.download_as_bytearray())
    limits.check_file_size(len(data))
    return data


def media_request(
    turn: Turn, spec: TaskSpec, media: MediaFile, limits: MediaLimits, text: str = ""
) -> TaskRequest:
    """A request whose file is downloaded once its model passed vetting."""

    async def load() -> ImageBytes | AudioBytes:
        data = await download(turn.context.bot, media, limits)
        if spec.input_kind == "image":
            return ImageBytes(data, limits.max_image_pixels, limits.max_image_bytes)
        return AudioBytes(data, limits.max_audio_seconds)

    limits_of_text = InputLimits.from_settings(turn.services.settings)
    call_params = (
        {"candidate_labels": candidate_labels(spec, text, limits_of_text)}
        if spec.input_style == "labels"
        else {}
    )
    return TaskRequest(text="", call_params=call_params, load=load)


async def read_media(turn: Turn, spec: TaskSpec, usage: Usage) -> TaskRequest:
    """The photo or sound a media command is about, and its labels (`/labels cat, dog`)."""
    limits = media_limits(turn.services.settings)
    media = find_media(turn.message, spec, limits)
    return media_request(turn, spec, media, limits, command_text(turn.message))


async def replied_transcript(turn: Turn, spec: TaskSpec, usage: Usage) -> str | None:
    """What was said in the voice note a text command replies to; None if it replies to none.

    A command with words of its own (`/sentiment I love it`) uses those, so it
    does not pay for a transcription it would ignore.
    """
    message = turn.message
    replied = message.reply_to_message
    if replied is None or replied.text or replied.caption:
        return None
    if spec.input_style == "text" and command_text(message):
        return None
    return await transcript(turn, replied, usage)


async def transcript(turn: Turn, message: Message, usage: Usage) -> str | None:
    """The words of a voice note (or audio, or video note), heard by this person's model.

    Once heard, the request whose `usage` this is counts against the quota whatever
    happens next: the transcription was work done for it.
    """
    media = audio_in(message)
    if media is None:
        return None
    transcribe = TASKS["transcribe"]
    limits = media_limits(turn.services.settings)
    limits.check_file_size(media.file_size)
    limits.check_duration(media.duration)
    request = media_request(turn, transcribe, media, limits)
    heard = Usage()
    call = await prepare_call(turn, transcribe, request, heard)
    result = await run_call(turn, transcribe, call, request, heard)
    usage.charged = True
    return result.text if isinstance(result, Transcript) and result.text else None


def caption_command_name(message: Message, bot_username: str | None) -> str | None:
    """`whatis` for a caption `/whatis` or `/whatis@thisbot`; None when meant for another bot."""
    entities = message.caption_entities or ()
    first = entities[0] if entities else None
    if first is None or first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return None
    command = (message.caption or "")[1 : first.length]
    name, _, addressee = command.partition("@")
    if addressee and addressee.lower() != (bot_username or "").lower():
        return None
    return name.lower()
