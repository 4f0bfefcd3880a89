"""The inbox in the running bot: an update accepted before a crash is answered after the start,
once; an update Telegram sends again is not handled twice.

The crash itself, on a real process killed with SIGKILL, is tests/app/test_crash_recovery.py.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.html import command_entities
from bot.tasks import param_rules_from_caps
from models import migrate
from models.database import create_engine
from models.inbox import InboxUpdate
from models.store import Store
from tests.support.crash import replies_to
from tests.support.harness import RunningBot, bot_settings, running_bot


async def test_an_update_accepted_but_not_answered_is_answered_after_the_start_and_only_once(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    settings = bot_settings(tmp_path, tiny_models_dir)
    async with BotApiEmulator() as emu:
        alice = emu.create_user("Alice")
        chat = emu.private_chat(alice)
        content = {"text": "/help", "entities": command_entities("/help")}
        message = emu.world.add_message(chat, alice, content)
        engine = create_engine(settings.database_url)
        await migrate.upgrade(engine)
        store = Store(engine, rules=param_rules_from_caps(256, 3))
        update = {"update_id": 900_001, "message": message}
        await store.inbox.accept(emu.bot_user.id, 900_001, chat.id, update)
        await store.close()

        async with running_bot(settings, emu=emu):
            [reply] = await emu.wait_for("sendMessage", since=0, timeout=30)
        async with running_bot(settings, emu=emu) as bot:
            await bot.ask(alice, chat, "/start")

        assert "/sentiment" in reply.result["text"], "the help text"
        assert replies_to(emu, message) == [reply.result], "answered once, not again"


async def test_an_update_telegram_sends_again_is_not_handled_twice(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/help")
    await bot.settle()
    [update] = bot.emu.accepted_updates

    bot.emu.delivery.resend(update)
    await bot.settle()
    await bot.ask(alice, chat, "/start")

    assert len(replies_to(bot.emu, update["message"])) == 1
    assert len(bot.emu.sent_messages(chat.id)) == 2


async def test_a_refused_strangers_messages_are_never_written_down_an_allowed_persons_are(
    bot: RunningBot,
) -> None:
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    bot.services.settings.allowed_users.append(alice.id)
    chat = bot.emu.private_chat(mallory)
    [refused] = await bot.ask(mallory, chat, "/sentiment Let me in")
    bot.emu.send_message(mallory, chat, "my secret plans")
    bot.emu.inline_query(mallory, "more secrets")
    await bot.settle()
    strangers = {update["update_id"] for update in bot.emu.accepted_updates}
    await bot.ask(alice, bot.emu.private_chat(alice), "/help")

    async with bot.services.store.database.session(read_only=True) as session:
        written = set((await session.execute(select(InboxUpdate.update_id))).scalars())
    assert refused.startswith("This bot is private.")
    assert len(strangers) == 3 and not strangers & written, "nothing of the stranger's is stored"
    assert len(written) == 1, "the allowed person's update is written down, as before"
