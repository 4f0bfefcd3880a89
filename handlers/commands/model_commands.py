"""The model commands (/sentiment, /generate, /whatis, …), one per row of the task registry.

Each is a PTB callback around `lifecycle.serve_command`; photos and files
whose caption is a command, and private voice notes for people who turned
`auto_transcribe` on, reach the same lifecycle.
"""

from __future__ import annotations

import logging

from telegram import Update

from bot.errors import StoreUnavailable
from bot.tasks import OPTIONS, TASKS, TaskSpec
from handlers.request.context import BotContext
from handlers.request.lifecycle import serve_command
from handlers.request.media_input import caption_command_name
from handlers.request.turn import Handler, Turn

log = logging.getLogger(__name__)


def task_handler(spec: TaskSpec) -> Handler:
    """A PTB callback for one registry row."""

    async def handler(update: Update, context: BotContext) -> None:
        await serve_command(await Turn.open(update, context), spec)

    handler.__name__ = handler.__qualname__ = f"{spec.name}_command"
    handler.__doc__ = f"/{spec.name}: run {spec.pipeline_task} on the {spec.input_kind} given."
    return handler


async def caption_command(update: Update, context: BotContext) -> None:
    """A photo or file sent with a media command as its caption (PTB commands read text only)."""
    message = update.effective_message
    if message is None:
        return
    spec = TASKS.get(caption_command_name(message, context.bot.username) or "")
    if spec is not None and spec.input_kind != "text":
        await serve_command(await Turn.open(update, context), spec)


async def voice_note(update: Update, context: BotContext) -> None:
    """A private voice note: when its sender turned auto_transcribe on, its transcript is their
    next turn of the conversation."""
    turn = await Turn.open(update, context)
    if turn.user is None:
        return
    try:
        options = await turn.services.store.preferences.get_options(turn.user.id)
    except StoreUnavailable:
        log.warning("store unavailable; voice note left untranscribed")
        return
    if options.get("auto_transcribe", OPTIONS["auto_transcribe"].default):
        await serve_command(turn, TASKS["chat"])
