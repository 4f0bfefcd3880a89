"""`hfbot console`: anyone can try the bot in a terminal, with no Telegram account."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from bot.offline.console import run_console
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
    assert "bot> POSITIVE" in printed or "bot> NEGATIVE" in printed
    assert "bot> temperature can't be “9”. Allowed: 0.05 … 2." in printed


async def test_a_caret_replies_to_the_previous_message(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    lines = io.StringIO("Paris is the capital of France.\n^ /ask What is Paris?\n")
    out = io.StringIO()
    await run_console(bot_settings(tmp_path, tiny_models_dir), lines=lines, out=out)
    assert "Reply with /ask" not in out.getvalue()
    assert "%" in out.getvalue(), "the answer comes with its score"


def test_demo_mode_says_plainly_that_answers_are_random(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "console",
            "--demo",
            "--demo-dir",
            str(tmp_path / "demo"),
        ],
        input="/sentiment hello\n",
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "answers are random" in result.stderr
    assert "bot> " in result.stdout
