"""Secrets never reach an output: not a rejected token, not a traceback, not a log line."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from pathlib import Path

import pytest

from bot.config import Settings
from bot.log_setup import configure_logging
from bot.offline.emulator import BotApiEmulator
from tests.app.test_webhook import free_port, serving_webhook, webhook_settings

ROOT = Path(__file__).resolve().parents[2]
REJECTED = "4242:this-token-was-revoked-SECRET"


async def test_a_rejected_token_ends_hfbot_run_with_one_line_that_does_not_name_it(
    tmp_path: Path,
) -> None:
    async with BotApiEmulator() as emu:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": REJECTED,
            "TELEGRAM_API_BASE_URL": emu.url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=120)

    printed = (out + err).decode()
    assert process.returncode == 2
    assert "this-token-was-revoked" not in printed
    assert "Traceback" not in printed
    assert printed.strip().splitlines()[-1] == (
        "hfbot: Telegram rejected TELEGRAM_BOT_TOKEN: check it, or ask @BotFather for a "
        "new one if it was revoked."
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_are_blanked_in_exception_text_too(
    log_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    configure_logging(
        Settings(
            _env_file=None, telegram_bot_token=REJECTED, hf_token="hf_secret", log_format=log_format
        )
    )
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]

    try:
        raise RuntimeError(f"The token `{REJECTED}` was rejected; hf_secret too")
    except RuntimeError:
        logging.getLogger("telegram.ext").exception("request failed for %s", "hf_secret")

    written = stream.getvalue()
    assert "RuntimeError" in written
    assert REJECTED not in written and "hf_secret" not in written
    assert written.count("[redacted]") >= 3


async def test_engine_tokens_and_a_webhook_secret_made_at_start_are_blanked_too(
    tmp_path: Path, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In webhook mode without HFBOT_WEBHOOK_SECRET the bot makes one; it and each
    engine's token are as secret as the bot token, whoever writes them to the log."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    monkeypatch.setenv("GPU_TOKEN", "engine-token-SECRET")
    settings = webhook_settings(
        tmp_path,
        tiny_models_dir,
        free_port(),
        engines={"gpu": {"base_url": "http://127.0.0.1:9", "token_env": "GPU_TOKEN"}},
    ).model_copy(update={"webhook_secret": None})
    configure_logging(settings)
    stream = io.StringIO()
    root.handlers[0].setStream(stream)  # type: ignore[attr-defined]

    async with serving_webhook(settings) as bot:
        [registered] = await bot.emu.wait_for("setWebhook", since=0)
        made = registered.params["secret_token"]
        talkative = logging.getLogger("somelib")
        talkative.warning("header X-Telegram-Bot-Api-Secret-Token: %s", made)
        talkative.warning("header Authorization: Bearer %s", "engine-token-SECRET")

    written = stream.getvalue()
    assert made and made not in written
    assert "engine-token-SECRET" not in written
    assert written.count("[redacted]") >= 2
