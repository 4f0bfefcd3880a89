"""Telegram handlers: thin layers that parse, call the pool or the store, and format."""

from __future__ import annotations

from telegram.ext import Application, CommandHandler

from handlers import common


def register_handlers(application: Application) -> None:
    """Every command the bot answers, in one place, so its surface reads at a glance."""
    application.add_handler(CommandHandler(["start", "help"], common.start))
