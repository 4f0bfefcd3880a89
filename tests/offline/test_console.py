"""`hfbot console`: anyone can try the bot in a terminal, with no Telegram account."""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from bot.offline.console import DEMO_NOTICE, run_console
from bot.offline.media_samples import image_bytes
from tests.support.harness import bot_settings

ROOT = Path(__file__).resolve().parent.parent


async def test_typed_commands_go_through_the_real_handlers_and_replies_are_printed(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    lines = io.StringIO(
        "/sentiment I love this\nPlain words are not a command\n/set temperature 9\n"
    )
    out = io.StringIO()
    await run_console(bot_settings(tmp_path, tiny_models_dir), lines=lines, out=out)
    printed = out.getvalue()
    # The first use of the classifier may show its ONNX export's status line first,
    # then that line edited into the answer.
    assert re.search(r"^bot( \(edited\))?> (POSITIVE|NEGATIVE)$", printed, flags=re.M)
    assert "bot> temperature can't be “9”. Allowed: 0.05 … 2." in printed


async def test_a_caret_replies_to_the_previous_message(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    lines = io.StringIO("Paris is the capital of France.\n^ /ask What is Paris?\n")
    out = io.StringIO()
    await run_console(bot_settings(tmp_path, tiny_models_dir), lines=lines, out=out)
    assert "Reply with /ask" not in out.getvalue()
    assert "%" in out.getvalue(), "the answer comes with its score"


async def test_pictures_and_voice_notes_are_saved_as_files_and_their_paths_printed(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    lines = io.StringIO("/set imagine size 256\n/imagine a red kite\n/say Hello there.\n")
    out = io.StringIO()
    files = tmp_path / "files"
    await run_console(bot_settings(tmp_path, tiny_models_dir), lines=lines, out=out, files=files)
    printed = out.getvalue()
    picture = re.search(r"^bot> \[picture saved to (\S+\.png)\] a red kite$", printed, flags=re.M)
    voice = re.search(r"^bot> \[voice note, \d+ s, saved to (\S+\.ogg)\]$", printed, flags=re.M)
    assert picture is not None and voice is not None, printed
    assert Path(picture[1]).parent == files
    assert (await asyncio.to_thread(Path(picture[1]).read_bytes)).startswith(b"\x89PNG")
    assert (await asyncio.to_thread(Path(voice[1]).read_bytes)).startswith(b"OggS")


async def test_a_chat_line_ending_in_a_photo_path_asks_the_chat_model_about_it(
    tmp_path: Path, tiny_models_dir: Path, tiny_vision_chat: Path
) -> None:
    photo = tmp_path / "cat.jpg"
    await asyncio.to_thread(photo.write_bytes, image_bytes())
    lines = io.StringIO(f"/model chat {tiny_vision_chat.name}\n/chat What is this? {photo}\n")
    out = io.StringIO()
    settings = bot_settings(tmp_path, tiny_models_dir, model_dir=tiny_models_dir)
    await run_console(settings, lines=lines, out=out)
    printed = out.getvalue()
    assert "Your model for chat is now" in printed
    assert "can't look at pictures" not in printed and "went wrong" not in printed
    assert printed.count("bot> ") >= 2


def test_demo_mode_shows_the_conversation_and_nothing_else(tmp_path: Path) -> None:
    """Piped input is answered in full (a streamed answer too) before the console quits;
    log lines and progress bars go to the log file, not the terminal; the notice that
    answers are noise comes once, first; the console keeps its own database; a
    `/translate xx:` target works offline."""
    log_file = tmp_path / "console.log"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--demo",
            "--demo-dir",
            str(tmp_path / "demo"),
            "--log-file",
            str(log_file),
        ],
        input="/generate Hi\nHello there\n/translate fr: Good morning\n",
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "HF_HUB_OFFLINE": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.strip() == DEMO_NOTICE
    assert "random weights" in DEMO_NOTICE and "hfbot console " in DEMO_NOTICE
    answers = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert answers[0].startswith("bot> Hi") and len(answers[0]) > len("bot> Hi")
    assert len(answers) >= 2, "the conversation's answer is shown too"
    assert "Writing…" not in result.stdout
    assert not [line for line in result.stdout.splitlines() if "INFO" in line or "Loading" in line]
    log = log_file.read_text()
    assert "hfbot started" in log
    assert "translate on Helsinki-NLP/opus-mt-en-fr: ok" in log, "the demo has that direction"
    assert (tmp_path / "data" / "hfbot" / "console-demo.db").exists()
    assert not (tmp_path / "bot.db").exists(), "DATABASE_URL is the real bot's, not the console's"
    assert not (tmp_path / "hfbot.db").exists()
