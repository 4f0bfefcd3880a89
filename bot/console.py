"""`hfbot console`: chat with the bot in a terminal, no Telegram account needed.

The real bot runs against the local Bot API emulator; what you type is sent
as messages from "you" in a private chat, and the bot's messages (and edits)
are printed as they arrive. `--demo` builds tiny random models so it works
offline in seconds; their answers are random, but every path is real.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from telegram.ext import ApplicationBuilder

from bot.app import build_application
from bot.config import Settings
from bot.emulator import BotApiEmulator

DEMO_NOTICE = (
    "Demo mode: tiny models with random weights stand in for the real ones, "
    "so answers are random. Without --demo the configured models are used."
)
REPLY_TIMEOUT_S = 300
HELP = "Type a command such as /sentiment I love this. Start a line with ^ to reply to your previous message. Ctrl-D quits."


def demo_settings(settings: Settings, directory: Path) -> Settings:
    """Settings whose default model for every task is a tiny model built in `directory`."""
    from bot.demo_models import build_demo_models

    return settings.model_copy(update={"default_models": build_demo_models(directory)})


def _answered(emu: BotApiEmulator, message_id: int) -> bool:
    """Whether the bot has replied to this message (every command's reply quotes it)."""
    return any(
        call.method == "sendMessage"
        and (call.result or {}).get("reply_to_message", {}).get("message_id") == message_id
        for call in emu.calls
    )


async def _print_bot_messages(emu: BotApiEmulator, chat_id: int, out: TextIO) -> None:
    seen = 0
    while True:
        await emu.wait_until(lambda seen=seen: len(emu.calls) > seen, timeout=10**9)
        for call in emu.calls[seen:]:
            if call.error is None and call.params.get("chat_id") == chat_id:
                if call.method == "sendMessage":
                    print(f"\nbot> {call.result['text']}\n", file=out, flush=True)
                elif call.method == "editMessageText":
                    print(f"bot (edited)> {call.result['text']}", file=out, flush=True)
        seen = len(emu.calls)


async def run_console(settings: Settings, lines: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    """Run the bot against an embedded emulator and chat with it line by line."""
    async with BotApiEmulator() as emu:
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        you = emu.create_user("You", username="you")
        chat = emu.private_chat(you)
        async with app:
            assert app.post_init is not None and app.post_shutdown is not None and app.updater
            await app.post_init(app)
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=1)
            printer = asyncio.create_task(_print_bot_messages(emu, chat.id, out))
            print(HELP, file=out, flush=True)
            previous: int | None = None
            try:
                while line := await asyncio.to_thread(lines.readline):
                    text = line.strip()
                    if not text:
                        continue
                    reply_to = previous if text.startswith("^") else None
                    sent = emu.send_message(you, chat, text.lstrip("^ ").strip(), reply_to=reply_to)
                    previous = message_id = sent["message_id"]
                    await emu.wait_until(
                        lambda message_id=message_id: _answered(emu, message_id),
                        timeout=REPLY_TIMEOUT_S,
                    )
            finally:
                printer.cancel()
                await app.updater.stop()
                await app.stop()
                await app.post_shutdown(app)
