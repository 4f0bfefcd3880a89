"""A real `hfbot run` process: it serves, then stops cleanly on SIGTERM without losing anything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from bot.offline.emulator import BotApiEmulator
from bot.tasks import param_rules_from_caps
from models.database import create_engine
from models.store import Store
from tests.support.harness import tiny_default_models

ROOT = Path(__file__).resolve().parent.parent


async def test_sigterm_answers_every_request_keeps_saved_settings_and_exits_cleanly(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    async with BotApiEmulator() as emu:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TELEGRAM_BOT_TOKEN": emu.token,
            "TELEGRAM_API_BASE_URL": emu.url,
            "DATABASE_URL": database,
            "HFBOT_DEFAULT_MODELS": json.dumps(tiny_default_models(tiny_models_dir)),
            "HFBOT_SHUTDOWN_GRACE_S": "30",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=tmp_path,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await emu.wait_for("getUpdates", since=0, timeout=120)
            alice = emu.create_user("Alice")
            chat = emu.private_chat(alice)
            emu.send_message(alice, chat, "/set generate temperature 0.4")
            await emu.wait_for("sendMessage", timeout=60)
            messages = [emu.send_message(alice, chat, f"/generate Story {n}") for n in range(3)]
            await emu.wait_until(lambda: emu.pending_updates == 0, timeout=60)
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 120)
        finally:
            if process.returncode is None:
                process.kill()
        assert process.returncode == 0, stderr.decode()[-2000:]
        answered = {
            call.result["reply_to_message"]["message_id"]
            for call in emu.calls
            if call.method == "sendMessage" and call.result and "reply_to_message" in call.result
        }
        assert {m["message_id"] for m in messages} <= answered, "every request got a reply"
        assert "Traceback" not in stderr.decode()

    engine = create_engine(database)
    store = Store(engine, rules=param_rules_from_caps(256, 3))
    try:
        assert (await store.preferences.user_choice(alice.id, "generate")).params == {"temperature": 0.4}
    finally:
        await store.close()
