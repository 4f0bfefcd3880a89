"""The database goes away, at start or mid-run, and comes back: the bot carries on by itself.

The bot reaches PostgreSQL through a relay that the test cuts and restores.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.app.serve import serve
from bot.offline.emulator import BotApiEmulator
from tests.support.flaky_database import flaky_database
from tests.support.harness import bot_settings, running_bot

DEFAULTS_NOTICE = "I can't reach my settings right now, so I used the defaults."
CANNOT_SAVE = "I can't reach my database right now, so I can't save that. Please try again later."


async def test_a_database_lost_mid_run_is_worked_around_and_used_again_once_back(
    postgres_database: str, tmp_path: Path, tiny_models_dir: Path
) -> None:
    async with flaky_database(postgres_database) as db:
        settings = bot_settings(
            tmp_path,
            tiny_models_dir,
            database_url=db.url,
            database_timeout_s=2,
            settings_cache_ttl_s=0,
        )
        async with running_bot(settings) as bot:
            alice = bot.person("Alice")
            chat = bot.emu.private_chat(alice)
            assert (await bot.ask(alice, chat, "/set generate temperature 0.5"))[0].endswith("is now 0.5.")

            db.down()
            [answer] = await bot.ask(alice, chat, "/sentiment fine weather")
            [refused] = await bot.ask(alice, chat, "/set generate temperature 0.7")

            db.up()
            [saved] = await bot.ask(alice, chat, "/set generate temperature 0.7")
            [settings_now] = await bot.ask(alice, chat, "/settings generate")
            [again] = await bot.ask(alice, chat, "/sentiment fine weather")

    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE") and DEFAULTS_NOTICE in answer
    assert refused == CANNOT_SAVE
    assert saved.endswith("is now 0.7.")
    assert "0.7" in settings_now
    assert DEFAULTS_NOTICE not in again


async def test_a_database_not_up_at_start_is_waited_for_and_the_bot_then_serves(
    postgres_database: str, tmp_path: Path, tiny_models_dir: Path
) -> None:
    async with flaky_database(postgres_database) as db, BotApiEmulator() as emu:
        db.down()
        settings = bot_settings(
            tmp_path, tiny_models_dir, database_url=db.url, database_timeout_s=2
        )
        app = build_application(settings, builder=emu.wire(ApplicationBuilder()))
        stop = asyncio.Event()
        running = asyncio.create_task(serve(settings, app, stop))
        try:
            await db.wait_for_attempts(2)
            assert not running.done(), "the bot waits instead of giving up"
            db.up()
            await emu.wait_for("getUpdates", since=0, timeout=60)
            alice = emu.create_user("Alice")
            emu.send_message(alice, emu.private_chat(alice), "/set temperature 0.5")
            [reply] = await emu.wait_for("sendMessage", timeout=30)
        finally:
            stop.set()
            await running
    assert reply.result["text"].endswith("is now 0.5.")
