"""/start and /help."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.tasks import TASKS

WELCOME = (
    "Hi! I run Hugging Face models for you, right here in the chat.\n"
    "Try /sentiment This book is awesome.\n"
    "Commands: {commands}"
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet and list what the bot can do."""
    assert update.effective_message is not None
    commands = " ".join(f"/{name}" for name in TASKS)
    await update.effective_message.reply_text(WELCOME.format(commands=commands))
