"""`hfbot console`: chat with the bot in a terminal, no Telegram account needed.

The real bot runs against the local Bot API emulator; what you type is sent
as messages from "you" in a private chat, and the bot's messages (and edits)
are printed as they arrive. `--demo` builds tiny random models so it works
offline in seconds; their answers are noise, but every path is real, and it
says so once at the start.

The console keeps its own database (a file in the per-user data folder, one
for the demo and one for real models), never the bot's DATABASE_URL: what is
typed here must not show up in the real bot's figures or settings. A terminal
shows no pictures or sound, so what the bot sends as a photo (/imagine) or a
voice note (/say) is saved as a file beside that database, and its path printed.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import sys
from pathlib import Path
from typing import TextIO

from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.config import Settings
from bot.delivery.order import ChatOrderedUpdateProcessor
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import FakeChat, FakeUser, JsonDict
from bot.tasks import TASKS, TRANSLATION_TARGETS
from handlers.request.context import BotApplication

DEMO_NOTICE = """\
Demo mode: tiny models with random weights stand in for the real ones, so their
answers are noise (stray words, odd characters): that is expected, nothing is
broken. Every command, setting and error path is real. For real answers:
  .venv/bin/hfbot models fetch --defaults   download the default models (about 10 GB)
  .venv/bin/hfbot console                   then talk to them here
  make run                                  or run the bot itself, in Telegram (your bot
                                            token in .env first)"""
REPLY_TIMEOUT_S = 300
HELP = (
    "Write to talk, or type a command such as /sentiment I love this. "
    "Start a line with ^ to reply to your previous message. A photo's path at the end of "
    "/whatis, /caption or /chat <question> sends that photo (in the demo, "
    "/model chat vision_chat picks a chat model that sees). Ctrl-D quits."
)


def console_database(demo: bool) -> Path:
    """The console's own SQLite file, in the per-user data folder (XDG_DATA_HOME)."""
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "hfbot" / ("console-demo.db" if demo else "console.db")


def console_files(database: Path) -> Path:
    """Where the console saves the pictures and voice notes the bot sends: beside its database."""
    return database.parent / "console-files"


def console_settings(settings: Settings, database: Path) -> Settings:
    """The settings with the console's own database (its folder made when missing)."""
    database.parent.mkdir(parents=True, exist_ok=True)
    return settings.model_copy(update={"database_url": f"sqlite+aiosqlite:///{database}"})


def demo_settings(settings: Settings, directory: Path) -> Settings:
    """Settings whose default model for every task is a tiny model built in `directory`.

    `directory` is also the model folder, holding every `/translate xx:` target
    as a link to the one tiny translation model, so those work offline too.
    """
    from bot.offline.demo_models import build_demo_models, tiny_vision_chat

    models = build_demo_models(directory)
    link_translation_targets(directory, Path(models["translate"]))
    # Not a default (the chat default reads text only), but in the model folder, so
    # `/model chat vision_chat` picks a chat model that sees photos.
    tiny_vision_chat(directory)
    return settings.model_copy(update={"default_models": models, "model_dir": directory})


def link_translation_targets(directory: Path, model: Path) -> None:
    """`<directory>/<target's Hub id>` for each translation target, a link to `model`."""
    for model_id in TRANSLATION_TARGETS.values():
        link = directory / model_id
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(model, link.parent), target_is_directory=True)


class Transcript:
    """What the console shows of the chat: the bot's messages, a streamed answer as it grows.

    Telegram shows a streamed answer as one message edited again and again; a
    terminal cannot edit, so the new words are printed as they come, and the
    finished answer once more in full. Status edits (a download's progress)
    are printed as they change. Pictures and voice notes are saved into `files` and
    their paths printed. Nothing else reaches the terminal.
    """

    def __init__(self, emu: BotApiEmulator, chat_id: int, out: TextIO, files: Path) -> None:
        self._emu = emu
        self._chat_id = chat_id
        self._out = out
        self._files = files
        self._seen = 0
        self._streaming: dict[int, str] = {}

    def behind(self) -> bool:
        """Whether calls were made since the last `show_new`."""
        return len(self._emu.calls) > self._seen

    def show_new(self) -> None:
        """Print every Bot API call to this chat made since the last time."""
        for call in self._emu.calls[self._seen :]:
            if call.error is None and call.params.get("chat_id") == self._chat_id:
                self._show(call.method, call.result if isinstance(call.result, dict) else {})
        self._seen = len(self._emu.calls)

    def _show(self, method: str, message: JsonDict) -> None:
        text, message_id = message.get("text", ""), message.get("message_id", 0)
        streaming = "stop:" in str(message.get("reply_markup"))
        grown = self._streaming.get(message_id)
        if method == "sendMessage" and streaming:
            self._streaming[message_id] = ""
        elif method == "sendMessage":
            self._print(f"\nbot> {text}")
        elif method == "editMessageText" and grown is not None and streaming:
            now = _answer_of(text)
            new = now[len(grown) :] if now.startswith(grown) else f"\n{now}"
            self._print(f"\nbot> {new}" if not grown else new, end="")
            self._streaming[message_id] = now
        elif method == "editMessageText" and grown is not None:
            del self._streaming[message_id]
            self._print(f"\n\nbot> {text}" if grown else f"\nbot> {text}")
        elif method == "editMessageText":
            self._print(f"bot (edited)> {text}")
        elif method == "sendDocument":
            self._print(f"bot> [file {message.get('document', {}).get('file_name', '')}]")
        elif method == "sendPhoto":
            path = self._save(message["photo"][-1]["file_id"], f"picture-{message_id}.png")
            self._print(f"bot> [picture saved to {path}] {message.get('caption', '')}".rstrip())
        elif method == "sendVoice":
            voice = message["voice"]
            path = self._save(voice["file_id"], f"voice-{message_id}.ogg")
            self._print(f"bot> [voice note, {voice.get('duration', 0)} s, saved to {path}]")

    def _save(self, file_id: str, name: str) -> Path:
        """A file the bot sent, written where the person can open it."""
        self._files.mkdir(parents=True, exist_ok=True)
        path = self._files / name
        path.write_bytes(self._emu.world.files[file_id].data)
        return path

    def _print(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=self._out, flush=True)


def _answer_of(draft: str) -> str:
    """A streaming draft's text without the cursor it ends with."""
    return draft.removesuffix("▍").rstrip()


async def _show_as_it_comes(emu: BotApiEmulator, transcript: Transcript) -> None:
    while True:
        await emu.wait_until(transcript.behind, timeout=10**9)
        transcript.show_new()


async def _answered(emu: BotApiEmulator, app: BotApplication) -> None:
    """Until the bot has handled everything sent so far, streamed answers included."""
    processor = app.update_processor
    await emu.wait_until(lambda: emu.pending_updates == 0, timeout=REPLY_TIMEOUT_S)
    await app.update_queue.join()
    if isinstance(processor, ChatOrderedUpdateProcessor):
        await processor.wait_idle()


# Media commands: `/whatis photo.jpg` sends the file itself, with the command as its caption.
_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
_VOICE_SUFFIXES = (".ogg", ".oga", ".opus")


def send_media_line(
    emu: BotApiEmulator, you: FakeUser, chat: FakeChat, line: str
) -> JsonDict | None:
    """Send `/<photo or sound command> [words] <existing file>` as that file; None for any other line.

    Photos go as photos and OGG/Opus as a voice note (which the command then
    replies to, as voice notes carry no caption here); anything else as a file.
    `/chat <question> <photo>` asks the chat model about the photo.
    """
    command, _, rest = line.partition(" ")
    words, _, last = rest.rpartition(" ")
    spec = TASKS.get(command.lstrip("/").split("@")[0].lower()) if command.startswith("/") else None
    path = Path(last).expanduser()
    if spec is None or spec.input_kind == "text" or not last or not path.is_file():
        return None
    caption = f"{command} {words}".strip()
    suffix = path.suffix.lower()
    if spec.input_kind == "chat" and suffix not in _PHOTO_SUFFIXES:
        return None
    data = path.read_bytes()
    if spec.input_kind in ("image", "chat") and suffix in _PHOTO_SUFFIXES:
        return emu.send_photo(you, chat, data, caption=caption)
    if spec.input_kind == "audio" and suffix in _VOICE_SUFFIXES:
        voice = emu.send_voice(you, chat, data)
        return emu.send_message(you, chat, caption, reply_to=voice["message_id"])
    mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return emu.send_document(
        you, chat, data, file_name=path.name, mime_type=mime_type, caption=caption
    )


async def run_console(
    settings: Settings,
    lines: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
    files: Path | None = None,
) -> None:
    """Run the bot against an embedded emulator and chat with it line by line.

    Each line waits for its answer before the next is sent, and the end of
    the input waits for the last one, so piped input is answered in full.
    Pictures and voice notes go to `files` (by default beside the demo database).
    """
    async with BotApiEmulator() as emu:
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        you = emu.create_user("You", username="you")
        chat = emu.private_chat(you)
        transcript = Transcript(
            emu, chat.id, out, files or console_files(console_database(demo=True))
        )
        async with app:
            assert app.post_init is not None and app.post_shutdown is not None and app.updater
            await app.post_init(app)
            await app.start()
            await app.updater.start_polling(poll_interval=0, timeout=1)
            printer = asyncio.create_task(_show_as_it_comes(emu, transcript))
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
                    previous = sent["message_id"]
                    try:
                        await _answered(emu, app)
                    except TimeoutError:
                        print("(no reply yet; carrying on)", file=out, flush=True)
            finally:
                printer.cancel()
                transcript.show_new()
                await app.updater.stop()
                await app.stop()
                await app.post_shutdown(app)
