"""SIGKILL in the middle of a burst: nothing accepted is lost, nothing confirmed is forgotten.

`hfbot run` runs as its own process against the emulator (webhook mode on SQLite
and PostgreSQL, polling on SQLite). A
burst of /sentiment requests and /set writes from 40 people arrives; once a
few are answered the process is killed with SIGKILL, then started again.

Every request the bot acknowledged before the kill is answered at least once
and at most twice: twice when the kill fell after its answer reached Telegram
and before the inbox row was marked done (the inbox replays it once more).
Requests Telegram still held are answered exactly once. When polling, an
update counts as acknowledged once a getUpdates offset confirmed it. Every setting the bot
confirmed is in the database, and the database passes its integrity checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.offline.bot_process import BotProcess, bot_environment
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict
from bot.tasks import param_rules_from_caps
from models.database import create_engine
from models.store import Store
from tests.app.test_webhook import free_port
from tests.support.crash import integrity_problems, replies_to
from tests.support.harness import tiny_default_models

PEOPLE = 40


@pytest.fixture(
    params=[("webhook", "sqlite"), ("webhook", "postgresql"), ("polling", "sqlite")],
    ids=["webhook-sqlite", "webhook-postgresql", "polling-sqlite"],
)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[bool, str]:
    """Webhook or polling, on a database of the test's own (a SQLite file, a fresh PostgreSQL
    database)."""
    mode, backend = request.param
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    else:
        url = str(request.getfixturevalue("postgres_database"))
    return mode == "webhook", url


def key(message: JsonDict) -> tuple[int, int]:
    return message["chat"]["id"], message["message_id"]


def answered(emu: BotApiEmulator, sent: list[JsonDict]) -> int:
    return sum(bool(replies_to(emu, m)) for m in sent)


def waiting(emu: BotApiEmulator, sent: list[JsonDict]) -> int:
    """Requests the bot acknowledged and has not answered yet."""
    accepted = {key(u["message"]) for u in emu.accepted_updates if "message" in u}
    return sum(key(m) in accepted and not replies_to(emu, m) for m in sent)


async def test_a_killed_bot_answers_every_accepted_request_and_keeps_every_confirmed_setting(
    setup: tuple[bool, str], tmp_path: Path, tiny_models_dir: Path
) -> None:
    webhook, database_url = setup
    async with BotApiEmulator() as emu:
        env = bot_environment(
            emu,
            database_url,
            tiny_default_models(tiny_models_dir),
            free_port() if webhook else None,
            # Requests wait for company this long, so many are in flight at the kill.
            HFBOT_POOL_MAX_WAIT_MS="300",
        )
        bot = BotProcess(emu, env, tmp_path)
        await bot.start()
        sent, writes = [], {}
        for n in range(PEOPLE):
            person = emu.create_user(f"P{n}")
            chat = emu.private_chat(person)
            if n % 2:
                value = round(0.05 * (n + 1), 2)
                sent.append(emu.send_message(person, chat, f"/set generate temperature {value}"))
                writes[person.id] = (value, sent[-1])
            else:
                sent.append(emu.send_message(person, chat, f"/sentiment request {n} is fine"))
        await emu.wait_until(lambda: answered(emu, sent) >= 4 and waiting(emu, sent) >= 3, 60)
        bot.kill()
        await bot.wait()
        accepted = {key(u["message"]) for u in emu.accepted_updates if "message" in u}
        unanswered_at_kill = [m for m in sent if key(m) in accepted and not replies_to(emu, m)]
        assert unanswered_at_kill, "the kill fell after the bot acknowledged unanswered requests"

        await bot.start()
        try:
            await emu.wait_until(lambda: all(replies_to(emu, m) for m in sent), 60)
        except TimeoutError:
            raise AssertionError(f"requests left unanswered; log:\n{bot.log_tail()}") from None
        assert await bot.stop() == 0, "the second life stops gracefully"

    counts = {key(m): len(replies_to(emu, m)) for m in sent}
    assert all(1 <= count <= 2 for count in counts.values()), counts
    twice = [i for i, count in counts.items() if count == 2]
    assert set(twice) <= accepted, "only a request acknowledged before the kill comes twice"

    engine = create_engine(database_url)
    try:
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        for user_id, (value, message) in writes.items():
            [confirmation, *_] = replies_to(emu, message)
            assert "is now" in confirmation["text"], confirmation["text"]
            choice = await store.preferences.user_choice(user_id, "generate")
            assert choice is not None and choice.params.get("temperature") == value
        assert await integrity_problems(engine) == []
    finally:
        await engine.dispose()
