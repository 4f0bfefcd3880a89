"""The inbox in the running bot: an update accepted before a crash is answered after the start,
once; an update Telegram sends again is not handled twice.

The crash itself, on a real process killed with SIGKILL, is tests/app/test_crash_recovery.py.
"""

from __future__ import annotations

from pathlib import Path

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.html import command_entities
from bot.tasks import param_rules_from_caps
from models import migrate
from models.database import create_engine
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
