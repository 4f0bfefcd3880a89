"""`hfbot console`: chat with the bot in a terminal, no Telegram account needed.

The real bot runs against the local Bot API emulator; what you type is sent
as messages from "you" in a private chat, and the bot's messages (and edits)
are printed as they arrive. `--demo` builds tiny random models so it works
offline in seconds; their answers are random, but every path is real.
"""

from __future__ import annotations

import asyncio
import mimetypes
import sys
from functools import partial
from pathlib import Path
from typing import TextIO

from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.config import Settings
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import FakeChat, FakeUser, JsonDict
from bot.tasks import TASKS

DEMO_NOTICE = (
    "Demo mode: tiny models with random weights stand in for the real ones, "
    "so answers are random. Without --demo the configured models are used."
)
REPLY_TIMEOUT_S = 300
HELP = "Type a command such as /sentiment I love this. Start a line with ^ to reply to your previous message. Ctrl-D quits."


def demo_settings(settings: Settings, directory: Path) -> Settings:
    """Settings whose default model for every task is a tiny model built in `directory`."""
    from bot.offline.demo_models import build_demo_models

    return settings.model_copy(update={"default_models": build_demo_models(directory)})


def _answered(emu: BotApiEmulator, message_id: int) -> bool:
    """Whether the bot has replied to this message (every command's reply quotes it)."""
    return any(
        call.method == "sendMessage"
        and (call.result or {}).get("reply_to_message", {}).get("message_id") == message_id
        for call in emu.calls
    )


def _more_calls_than(emu: BotApiEmulator, seen: int) -> bool:
    return len(emu.calls) > seen


async def _print_bot_messages(emu: BotApiEmulator, chat_id: int, out: TextIO) -> None:
    seen = 0
    while True:
        await emu.wait_until(partial(_more_calls_than, emu, seen), timeout=10**9)
        for call in emu.calls[seen:]:
            if call.error is None and call.params.get("chat_id") == chat_id:
                if call.method == "sendMessage":
                    print(f"\nbot> {call.result['text']}\n", file=out, flush=True)
                elif call.method == "editMessageText":
                    print(f"bot (edited)> {call.result['text']}", file=out, flush=True)
        seen = len(emu.calls)


# Media commands: `/whatis photo.jpg` sends the file itself, with the command as its caption.
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_VOICE_SUFFIXES = (".ogg", ".oga", ".opus")


def send_media_line(
    emu: BotApiEmulator, you: FakeUser, chat: FakeChat, line: str
) -> JsonDict | None:
    """Send `/<photo or sound command> [words] <existing file>` as that file; None for any other line.

    Photos go as photos and OGG/Opus as a voice note (which the command then
    replies to, as voice notes carry no caption here); anything else as a file.
    """
    command, _, rest = line.partition(" ")
    words, _, last = rest.rpartition(" ")
    spec = TASKS.get(command.lstrip("/").split("@")[0].lower()) if command.startswith("/") else None
    path = Path(last).expanduser()
    if spec is None or spec.input_kind == "text" or not last or not path.is_file():
        return None
    caption = f"{command} {words}".strip()
    data = path.read_bytes()
    suffix = path.suffix.lower()
    if spec.input_kind == "image" and suffix in _PHOTO_SUFFIXES:
        return emu.send_photo(you, chat, data, caption=caption)
    if spec.input_kind == "audio" and suffix in _VOICE_SUFFIXES:
        voice = emu.send_voice(you, chat, data)
        return emu.send_message(you, chat, caption, reply_to=voice["message_id"])
    mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return emu.send_document(
        you, chat, data, file_name=path.name, mime_type=mime_type, caption=caption
    )


async def run_console(
    settings: Settings, lines: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> None:
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
                    words = text.lstrip("^ ").strip()
                    sent = send_media_line(emu, you, chat, words) or emu.send_message(
                        you, chat, words, reply_to=reply_to
                    )
                    previous = message_id = sent["message_id"]
                    try:
                        await emu.wait_until(
                            partial(_answered, emu, message_id), timeout=REPLY_TIMEOUT_S
                        )
                    except TimeoutError:
                        print("(no reply yet; carrying on)", file=out, flush=True)
            finally:
                printer.cancel()
                await app.updater.stop()
                await app.stop()
                await app.post_shutdown(app)
