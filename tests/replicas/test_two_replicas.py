"""Two replicas of one bot, through the real bot: what one person sends, spread over both.

Two replicas (the application `hfbot run` builds, in webhook mode) share one PostgreSQL
and the real Redis; the test stands where a load balancer would, handing each update to
the replica of its choice. Model calls are held back until every request has passed (or
failed) its admission, so were anything counted per replica, a replica would let
through what the other already counts:

- two messages of one conversation: the second waits for the first's answer, and sees it;
- a daily quota of 2, three requests over two replicas: two answered, one refused;
- an in-flight cap of 2, three requests at once over two replicas: one refused;
- a /cancel landing on the replica that does not run the request still stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
    async with BotApiEmulator(token()) as emu:
        settings = replica_settings(tmp_path, tiny_models_dir, emu, postgres_database)
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


def replica_settings(tmp_path: Path, models: Path, emu: BotApiEmulator, database: str, **more: Any) -> Settings:
    """What every replica runs with. Two replicas in one process means two pools in one: ONNX
    stays off, since torch's exporter is one per process (each pool exports on its own
    loading thread, one at a time, which is enough for one pool in one `hfbot run`)."""
    return bot_settings(
        tmp_path,
        models,
        telegram_bot_token=emu.token,
        database_url=database,
        redis_url=REDIS,
        engine_onnx="off",
        **more,
    )


def token() -> str:
    """A bot of its own (its own keys in Redis) for each test."""
    return f"{random.randrange(7 * 10**9, 8 * 10**9)}:two-replicas-test-token"


def hold_every_answer(*replicas: RunningBot, entered: asyncio.Event | None = None) -> asyncio.Event:
    """Every model call on these replicas waits for the returned event (`entered` is set as
    the first one reaches the pool)."""
    release = asyncio.Event()
    for replica in replicas:
        pool = replica.services.pool
        submit = pool.submit

        async def held(*args: Any, submit: Any = submit, **kwargs: Any) -> Any:
            if entered is not None:
                entered.set()
            await release.wait()
            return await submit(*args, **kwargs)

        pool.submit = held  # type: ignore[method-assign]
    return release


async def one_refused(
    tmp_path: Path, tiny_models_dir: Path, database: str, refusal: re.Pattern[str], **limits: int
) -> list[str]:
    """Three /sentiment requests of one person (in three groups), over two replicas, answers
    held until one of them is refused: what the three were answered."""
    async with BotApiEmulator(token()) as emu:
        settings = replica_settings(tmp_path, tiny_models_dir, emu, database, **limits)
        async with replica(settings, emu) as a, replica(settings, emu) as b:
            release = hold_every_answer(a, b)
            alice = emu.create_user("Alice")
            # Three chats, so that no reply waits for another's (a chat's replies keep their
            # order): the refusal comes while the other two are still held.
            groups = [emu.create_chat("supergroup", f"Group {n}", creator=alice) for n in range(3)]
            for group in groups:
                emu.send_message(alice, group, "/sentiment a fine day")
            for n, update in enumerate(emu.hand_over()):
                await deliver((a, b)[n % 2], update)
            try:
                await emu.wait_for(
                    "sendMessage", lambda call: bool(refusal.match(call.result["text"])), timeout=30
                )
            finally:
                release.set()
            await emu.wait_until(
                lambda: all(emu.sent_messages(group.id) for group in groups), timeout=60
            )
            return [emu.sent_messages(group.id)[0]["text"] for group in groups]


def answered(reply: str) -> bool:
    return reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")


async def test_a_daily_quota_holds_across_replicas_while_requests_still_run(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    refusal = re.compile(r"^You've used your 2 requests for today\.")
    replies = await one_refused(
        tmp_path, tiny_models_dir, postgres_database, refusal, daily_quota=2
    )
    assert sum(answered(reply) for reply in replies) == 2
    assert sum(bool(refusal.match(reply)) for reply in replies) == 1


async def test_the_in_flight_cap_holds_across_replicas(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    refusal = re.compile(r"^You already have 2 requests running\.")
    replies = await one_refused(
        tmp_path, tiny_models_dir, postgres_database, refusal, max_in_flight_per_user=2
    )
    assert sum(answered(reply) for reply in replies) == 2
    assert sum(bool(refusal.match(reply)) for reply in replies) == 1


async def test_a_cancel_landing_on_the_other_replica_stops_the_request(
    tmp_path: Path, tiny_models_dir: Path, postgres_database: str
) -> None:
    async with BotApiEmulator(token()) as emu:
        settings = replica_settings(tmp_path, tiny_models_dir, emu, postgres_database)
        async with replica(settings, emu) as a, replica(settings, emu) as b:
            entered = asyncio.Event()
            release = hold_every_answer(a, entered=entered)
            alice = emu.create_user("Alice")
            chat = emu.private_chat(alice)
            asked = emu.send_message(alice, chat, "/sentiment a long wait")
            [running] = emu.hand_over()
            await deliver(a, running)
            try:
                await asyncio.wait_for(entered.wait(), timeout=30)
                emu.send_message(alice, chat, "/cancel")
                [cancel] = emu.hand_over()
                await deliver(b, cancel)
                [stopped] = await emu.wait_for(
                    "sendMessage", answer_to(a, asked), since=0, timeout=30
                )
            finally:
                release.set()
            assert stopped.result["text"] == "Stopped."
            await emu.wait_until(lambda: a.services.running.count(alice.id) == 0, 30)
            # The /cancel itself said nothing: something of Alice's was running (on the other).
            texts = [message["text"] for message in emu.sent_messages(chat.id)]
            assert "There is nothing of yours running." not in texts
