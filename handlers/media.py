"""Photo and sound commands (/whatis, /caption, /labels, /transcribe), and voice notes as text.

A media command finds its file in its own message (the command is the
caption) or in the message it replies to, downloads it through the Bot API
into memory, and hands the bytes to the pool, whose runner decodes them in
the executor. Text commands replying to a voice note work on its transcript
(`replied_transcript`), and people who turned `auto_transcribe` on get their
private voice notes transcribed without a command. Nothing a person sent is
written to disk; the usage log keeps the task, the size and the time taken.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from telegram import Bot, Message, MessageEntity, Update
from telegram.ext import ContextTypes, filters

from bot.config import Settings
from bot.errors import NoAudio, NoImage, StoreUnavailable, UsageHint, UserFacingError
from bot.media import AudioBytes, ImageBytes, MediaLimits, pick_photo_size
from bot.tasks import OPTIONS, TASKS, TaskSpec
from handlers import inference
from handlers.parsing import command_text
from handlers.turn import Handler, Turn

log = logging.getLogger(__name__)

# A caption that starts with a command; which command, and for which bot, `caption_command` decides.
CAPTION_COMMAND = filters.CaptionRegex(r"^/\w+(?:@\w+)?(?:\s|$)")
# Voice and video notes in private chats, for people who turned auto_transcribe on.
PRIVATE_VOICE = filters.ChatType.PRIVATE & (filters.VOICE | filters.VIDEO_NOTE)

_NOTHING_FOUND = {"image": "result.nothing_seen", "audio": "result.nothing_heard"}


@dataclass(frozen=True)
class MediaFile:
    """A file a media command can use, with what Telegram already says about it."""

    file_id: str
    file_size: int | None
    duration: float | None = None


@dataclass
class _Usage:
    """What the usage log records of one request: never the content."""

    model_id: str = "?"
    size: int | None = None


def media_limits(settings: Settings) -> MediaLimits:
    return MediaLimits.from_megabytes(
        settings.max_file_mb, settings.max_image_pixels, settings.max_audio_seconds
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
            return MediaFile(sound.file_id, sound.file_size, float(sound.duration))
    document = message.document
    if document is not None and (document.mime_type or "").startswith(("audio/", "video/")):
        return MediaFile(document.file_id, document.file_size)
    return None


_FINDERS: dict[str, Callable[[Message | None, MediaLimits], MediaFile | None]] = {
    "image": image_in,
    "audio": audio_in,
}


def find_media(message: Message, spec: TaskSpec, limits: MediaLimits) -> MediaFile:
    """The command's own file (it is the caption) or the replied message's; refuse if none."""
    find = _FINDERS[spec.input_kind]
    found = find(message, limits) or find(message.reply_to_message, limits)
    if found is None:
        missing = NoImage if spec.input_kind == "image" else NoAudio
        raise missing(command=spec.name)
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


def _labels(message: Message, spec: TaskSpec) -> dict[str, Any]:
    """`/labels cat, dog, car`: the user's candidate labels (zero-shot needs two or more)."""
    if spec.input_style != "labels":
        return {}
    labels = [label.strip() for label in command_text(message).split(",") if label.strip()]
    if len(labels) < 2:
        raise UsageHint("error.labels_needs_labels")
    return {"candidate_labels": labels}


def _pool_input(spec: TaskSpec, data: bytes, limits: MediaLimits) -> ImageBytes | AudioBytes:
    if spec.input_kind == "image":
        return ImageBytes(data, limits.max_image_pixels)
    return AudioBytes(data, limits.max_audio_seconds)


async def _infer(
    turn: Turn, spec: TaskSpec, media: MediaFile, call_params: dict[str, Any], usage: _Usage
) -> tuple[Any, bool]:
    """This user's model for the task, vetted, run on the file: (result, store fell back)."""
    svc = turn.services
    limits = media_limits(svc.settings)
    resolved, fallback = await inference.resolve_settings(turn, spec)
    usage.model_id = resolved.model_id
    source, kwargs = await inference.prepare_call(
        turn, spec, resolved.model_id, resolved.params, call_params
    )
    async with svc.typing.during(turn.context.bot, turn.chat.id):
        data = await download(turn.context.bot, media, limits)
        usage.size = len(data)
        result = await svc.running.run(
            turn.owner_id,
            svc.pool.submit(spec.pipeline_task, source, _pool_input(spec, data, limits), kwargs),
        )
    return result, fallback


async def run_media_task(turn: Turn, spec: TaskSpec) -> None:
    """Find the file, check the limits, run the user's model on it in the pool, and reply."""
    svc = turn.services
    started = time.perf_counter()
    usage = _Usage()
    try:
        media = find_media(turn.message, spec, media_limits(svc.settings))
        call_params = _labels(turn.message, spec)
        svc.limiter.check(turn.owner_id)
        result, fallback = await _infer(turn, spec, media, call_params, usage)
        markup = spec.formatter(result, "") or turn.t(_NOTHING_FOUND[spec.input_kind])
        if fallback:
            markup += "\n\n" + turn.t("notice.store_fallback")
        await turn.reply(markup)
    except UserFacingError as error:
        await turn.refuse(error)
        await inference.log_usage(turn, spec, usage.model_id, started, error.key, usage.size)
        return
    except Exception:
        svc.metrics.command(spec.name, "crashed", time.perf_counter() - started)
        raise
    await inference.log_usage(turn, spec, usage.model_id, started, None, usage.size)


async def replied_transcript(turn: Turn, spec: TaskSpec) -> str | None:
    """What was said in the voice note a text command replies to; None if it replies to none.

    A command with words of its own (`/sentiment I love it`) uses those, so it
    does not pay for a transcription it would ignore.
    """
    message = turn.message
    replied = message.reply_to_message
    if spec.input_kind != "text" or replied is None or replied.text or replied.caption:
        return None
    if spec.input_style == "text" and command_text(message):
        return None
    media = audio_in(replied)
    if media is None:
        return None
    transcribe = TASKS["transcribe"]
    limits = media_limits(turn.services.settings)
    limits.check_file_size(media.file_size)
    limits.check_duration(media.duration)
    result, _ = await _infer(turn, transcribe, media, {}, _Usage())
    return str(result.get("text", "") if isinstance(result, dict) else result).strip() or None


def task_handler(spec: TaskSpec) -> Handler:
    """A PTB callback for one photo or sound command typed as text (replying to the file)."""

    async def handler(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await run_media_task(await Turn.open(update, context), spec)

    handler.__name__ = handler.__qualname__ = f"{spec.name}_command"
    handler.__doc__ = f"/{spec.name}: run {spec.pipeline_task} on a photo or sound."
    return handler


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


async def caption_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo or file sent with a media command as its caption (PTB commands read text only)."""
    message = update.effective_message
    if message is None:
        return
    spec = TASKS.get(caption_command_name(message, context.bot.username) or "")
    if spec is not None and spec.input_kind != "text":
        await run_media_task(await Turn.open(update, context), spec)


async def voice_note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A private voice note: transcribed when its sender turned auto_transcribe on."""
    turn = await Turn.open(update, context)
    if turn.user is None:
        return
    try:
        options = await turn.services.store.get_options(turn.user.id)
    except StoreUnavailable:
        log.warning("store unavailable; voice note left untranscribed")
        return
    if options.get("auto_transcribe", OPTIONS["auto_transcribe"].default):
        await run_media_task(turn, TASKS["transcribe"])
