"""Telegram unwell: 5xx answers, 429s, slow and dropped connections, injected by the emulator.

Each test states what the person sees (their answer, once) and that the bot
recovers by itself: nothing is restarted and no later request is affected.
"""

from __future__ import annotations

import time

import pytest

from bot.offline.emulator.faults import Fault
from tests.support.harness import RunningBot


def answers(bot: RunningBot, chat_id: int) -> list[str]:
    return [m["text"] for m in bot.emu.sent_messages(chat_id)]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("sendMessage", "status", count=2, status=502),
        Fault("sendMessage", "status", count=1, status=500),
        Fault("sendMessage", "drop", count=2),
        Fault("sendMessage", "delay", count=1, delay_s=1.5),
    ],
    ids=["502-twice", "500", "dropped-twice", "slow"],
)
async def test_an_answer_survives_a_passing_fault_and_arrives_once(
    bot: RunningBot, fault: Fault
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.faults.add(fault)

    [reply] = await bot.ask(alice, chat, "/sentiment What a lovely day")

    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    assert not bot.emu.faults.pending, "the fault was met"
    assert answers(bot, chat.id) == [reply], "one answer, no error message, no duplicate"
    [after] = await bot.ask(alice, chat, "/sentiment and again")
    assert after.splitlines()[0] in ("POSITIVE", "NEGATIVE")


async def test_a_429_with_retry_after_delays_the_answer_by_that_long(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.faults.add(Fault("sendMessage", "retry_after", retry_after=1))
    started = time.monotonic()

    [reply] = await bot.ask(alice, chat, "/sentiment patience")

    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    assert time.monotonic() - started >= 1.0
    assert answers(bot, chat.id) == [reply]


@pytest.mark.parametrize(
    "fault",
    [Fault("getUpdates", "status", count=2, status=502), Fault("getUpdates", "drop", count=2)],
    ids=["502", "dropped"],
)
async def test_polling_carries_on_after_getupdates_fails(bot: RunningBot, fault: Fault) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.emu.wait_until(lambda: bot.emu.long_polls_waiting > 0)
    bot.emu.faults.add(fault)
    [hello] = await bot.ask(alice, chat, "/start")
    await bot.emu.wait_until(lambda: not bot.emu.faults.pending)

    [reply] = await bot.ask(alice, chat, "/sentiment still there?")

    assert hello.startswith("Hi Alice!")
    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    assert answers(bot, chat.id) == [hello, reply]


async def test_an_answer_that_keeps_failing_is_given_up_and_the_next_one_works(
    bot: RunningBot,
) -> None:
    """Five 502s outlast the retries: the person is told something went wrong, nothing hangs."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.faults.add(Fault("sendMessage", "status", count=4, status=502))

    [reply] = await bot.ask(alice, chat, "/sentiment unlucky")

    assert reply == "Something went wrong on my side. Please try again."
    [after] = await bot.ask(alice, chat, "/sentiment lucky")
    assert after.splitlines()[0] in ("POSITIVE", "NEGATIVE")
