"""What crash tests check after the bot (bot/offline/bot_process.py) was killed and restarted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict


def replies_to(emu: BotApiEmulator, message: JsonDict) -> list[JsonDict]:
    """The bot's messages (sent successfully) that answer `message`, in order: texts,
    pictures and voice notes."""
    chat_id, message_id = message["chat"]["id"], message["message_id"]
    return [
        call.result
        for call in emu.calls
        if call.method in ("sendMessage", "sendPhoto", "sendVoice")
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
