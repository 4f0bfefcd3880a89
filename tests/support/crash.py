"""`hfbot run` as a real process against the emulator, to be killed and started again.

The emulator lives in the test's process, so it outlives the bot: it keeps the
updates the bot never acknowledged, retries the webhook delivery that the kill
cut off, and records every answer across both lives of the bot.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict

HFBOT = Path(sys.executable).with_name("hfbot")


@dataclass
class BotProcess:
    """One `hfbot run` in webhook mode; `lives` counts how often it was started."""

    emu: BotApiEmulator
    env: dict[str, str]
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    lives: int = 0
    logs: list[Path] = field(default_factory=list)

    async def start(self, timeout: float = 60.0) -> None:  # noqa: ASYNC109 - the test's own bound
        """Start it and return once it has registered its webhook (it is then serving)."""
        registered = sum(1 for call in self.emu.calls if call.method == "setWebhook")
        self.lives += 1
        log = self.workdir / f"bot-{self.lives}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.process = await asyncio.create_subprocess_exec(
                str(HFBOT), "run", env=self.env, cwd=self.workdir, stdout=out, stderr=out
            )
        try:
            await self.emu.wait_until(
                lambda: (
                    sum(1 for c in self.emu.calls if c.method == "setWebhook") > registered
                    or self.process is None
                    or self.process.returncode is not None
                ),
                timeout=timeout,
            )
        except TimeoutError:
            raise AssertionError(f"the bot did not start:\n{self.log_tail()}") from None

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM: it finishes what it holds (the graceful stop) and exits."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), 60)

    def log_tail(self, lines: int = 40) -> str:
        if not self.logs or not self.logs[-1].exists():
            return ""
        return "\n".join(self.logs[-1].read_text(errors="replace").splitlines()[-lines:])


def bot_environment(
    emu: BotApiEmulator, database_url: str, default_models: dict[str, str], port: int, **extra: str
) -> dict[str, str]:
    """The environment of `hfbot run` against `emu`: nothing from the developer's own settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HFBOT_", "TELEGRAM_", "DATABASE_URL"))
    }
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": emu.token,
            "TELEGRAM_API_BASE_URL": emu.url,
            "DATABASE_URL": database_url,
            "HFBOT_WEBHOOK_URL": f"http://127.0.0.1:{port}",
            "HFBOT_WEBHOOK_LISTEN": "127.0.0.1",
            "HFBOT_WEBHOOK_PORT": str(port),
            "HFBOT_WEBHOOK_SECRET": "crash-test-secret",
            "HFBOT_DEFAULT_MODELS": json.dumps(default_models),
            "HFBOT_ENGINE_ONNX": "off",
            "HFBOT_RATE_LIMIT_PER_MINUTE": "0",
            "HFBOT_MAX_IN_FLIGHT_PER_USER": "10",
            "HFBOT_SHUTDOWN_GRACE_S": "30",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **extra,
        }
    )
    return env


def replies_to(emu: BotApiEmulator, message: JsonDict) -> list[JsonDict]:
    """The bot's messages (sent successfully) that answer `message`, in order."""
    chat_id, message_id = message["chat"]["id"], message["message_id"]
    return [
        call.result
        for call in emu.calls
        if call.method == "sendMessage"
        and call.error is None
        and isinstance(call.result, dict)
        and call.result["chat"]["id"] == chat_id
        and call.result.get("reply_to_message", {}).get("message_id") == message_id
    ]


async def integrity_problems(engine: AsyncEngine) -> list[str]:
    """What the database's own checks find wrong; empty when it is sound.

    SQLite: `PRAGMA integrity_check` and `foreign_key_check`. PostgreSQL: every
    B-tree index checked against its table (amcheck), and every foreign key and
    CHECK constraint validated again from scratch, in a transaction rolled back.
    """
    problems: list[str] = []
    async with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            found = (await connection.exec_driver_sql("PRAGMA integrity_check")).scalars().all()
            problems += [row for row in found if row != "ok"]
            orphans = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            problems += [f"orphan row {tuple(row)}" for row in orphans]
            return problems
        await connection.execute(text("CREATE EXTENSION IF NOT EXISTS amcheck"))
        indexes = (
            await connection.execute(
                text(
                    "SELECT c.oid::regclass::text FROM pg_index i JOIN pg_class c "
                    "ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE a.amname = 'btree' AND n.nspname = current_schema()"
                )
            )
        ).scalars()
        for index in list(indexes):
            await connection.execute(
                text("SELECT bt_index_check(CAST(:index AS regclass), true)"), {"index": index}
            )
        constraints: list[Any] = (
            await connection.execute(
                text(
                    "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                    "FROM pg_constraint WHERE contype IN ('f', 'c') "
                    "AND connamespace = current_schema()::regnamespace"
                )
            )
        ).all()
        for table, name, definition in constraints:
            copy = f"recheck_{name}"[:63]
            await connection.execute(
                text(f'ALTER TABLE {table} ADD CONSTRAINT "{copy}" {definition} NOT VALID')
            )
            try:
                await connection.execute(text(f'ALTER TABLE {table} VALIDATE CONSTRAINT "{copy}"'))
            except Exception as exc:
                problems.append(f"{table}.{name}: {exc}")
                break
        await connection.rollback()
    return problems
