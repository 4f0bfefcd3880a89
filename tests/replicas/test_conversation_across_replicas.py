"""Two messages of one conversation, landing on two replicas at once, through the real bot.

Two replicas of one bot (the application `hfbot run` builds, in webhook mode) share one
PostgreSQL and the real Redis; the test stands where a load balancer would, handing the
first message to one replica and the second to the other. The first answer is held back
until the second has reached its conversation's line, so were the line not shared, the
second would be answered at once, without the first in its history.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

from telegram import Update
from telegram.ext import ApplicationBuilder

from bot.app.build import build_application
from bot.config import Settings
from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import JsonDict
from tests.app.test_conversation_turns import answer_to, hold_answer, said, watch_turns
from tests.app.test_conversations import record_prompts, stored
from tests.support.harness import RunningBot, bot_settings

REDIS = "redis://127.0.0.1:6379/0"


@contextlib.asynccontextmanager
async def replica(settings: Settings, emu: BotApiEmulator) -> AsyncIterator[RunningBot]:
    """One replica: the bot as `hfbot run` builds it behind a webhook (no polling)."""
    app = build_application(settings, builder=emu.wire(ApplicationBuilder()), webhook=True)
    async with app:
        assert app.post_init is not None and app.post_shutdown is not None
        await app.post_init(app)
        await app.start()
        try:
            yield RunningBot(emu, app, settings)
        finally:
            await app.stop()
            await app.post_shutdown(app)


async def deliver(replica: RunningBot, update: JsonDict) -> None:
    """What the webhook route does with an update: into the application's queue (and inbox)."""
    await replica.app.update_queue.put(Update.de_json(update, replica.app.bot))


async def test_two_messages_of_one_conversation_on_two_replicas_take_turns(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    token = f"{random.randrange(7 * 10**9, 8 * 10**9)}:conversation-test-token"
    async with BotApiEmulator(token) as emu:
        settings = bot_settings(
            tmp_path,
            tiny_models_dir,
            telegram_bot_token=token,
            database_url=postgres_database,
            redis_url=REDIS,
        )
        async with replica(settings, emu) as a, replica(settings, emu) as b:
            release = hold_answer(a, "Hello, my name is Zebulon.")
            prompts = record_prompts(b)
            watched = watch_turns(b)
            assert b.services.replicas is not None
            watched.share(b.services.replicas.conversations)
            alice = emu.create_user("Alice")
            chat = emu.private_chat(alice)

            first = emu.send_message(alice, chat, "Hello, my name is Zebulon.")
            second = emu.send_message(alice, chat, "What is my name?")
            to_a, to_b = emu.hand_over()
            await deliver(a, to_a)
            await deliver(b, to_b)
            try:
                await watched.until_waited(1)
            finally:
                release.set()  # a failure, too, lets the first answer end (and the bot stop)
            await emu.wait_for("sendMessage", answer_to(b, second), since=0, timeout=60)

            rows = await stored(b)
            [prompt] = prompts
            assert prompt.message == second["text"]
            assert said(prompt) == [("user", first["text"]), ("assistant", rows[1].content)]
            asked = {first["message_id"]: "first", second["message_id"]: "second"}
            answered = [asked[m["reply_to_message"]["message_id"]] for m in emu.sent_messages(chat.id)]
            assert answered == ["first", "second"]
