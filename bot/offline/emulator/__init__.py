"""A local Telegram Bot API emulator: the real bot runs against it in tests and the console."""

from __future__ import annotations

from bot.offline.emulator.flood import FloodControl, FloodLimits, RateWindow
from bot.offline.emulator.html import EntityParseError, parse_html
from bot.offline.emulator.methods import UploadedFile
from bot.offline.emulator.server import DEFAULT_TOKEN, BotApiEmulator
from bot.offline.emulator.world import ApiCall, ApiError, ChatType, FakeChat, FakeUser, StoredFile

__all__ = [
    "DEFAULT_TOKEN",
    "ApiCall",
    "ApiError",
    "BotApiEmulator",
    "ChatType",
    "EntityParseError",
    "FakeChat",
    "FakeUser",
    "FloodControl",
    "FloodLimits",
    "RateWindow",
    "StoredFile",
    "UploadedFile",
    "parse_html",
]
