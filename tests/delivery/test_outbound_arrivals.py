"""Telegram's limits as Telegram counts them: by arrival, with a real round trip between.

The real PTB `ExtBot` with the outbound limiter sends through HTTP to the Bot API
emulator, which runs on an event loop of its own thread (as Telegram runs elsewhere),
adds a round trip to every call and counts each one, with flood control on, when it
arrives. A bot loop kept busy by work that holds it (handlers, formatting) delays what
the bot sends and when it notices answers, but not when the emulator counts.

The group window is scaled down (3 in 5 s instead of 20 a minute) so the test takes
seconds; the bot's budget and the emulator's limits use the same numbers, as they do
with Telegram's. Before the burst the bot has made its start-up calls, one after the
other, as the bot does (getMe, setMyCommands, setWebhook): the limiter trusts the
shortest round trip only once a lone call came back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import pytest
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.delivery.outbound import Budget, PriorityRateLimiter, Window
from bot.offline.emulator import BotApiEmulator, FloodLimits, RateWindow
from bot.offline.emulator.world import FakeChat
from tests.support.loop_thread import far_telegram as emulator_far_away

ROUND_TRIP_S = 0.4
TELEGRAM = Budget(overall=Window(30, 1.0), per_chat=Window(1, 1.0), group=Window(3, 5.0))
FLOOD = FloodLimits(
    overall=RateWindow(30, 1.0), per_chat=RateWindow(1, 1.0), group=RateWindow(3, 5.0)
)
PRIVATE_CHATS, PER_PRIVATE_CHAT, GROUPS, PER_GROUP = 60, 3, 2, 4


@pytest.fixture
def far_telegram() -> Iterator[BotApiEmulator]:
    """The emulator on a thread of its own, ROUND_TRIP_S away, flood control on."""
    with emulator_far_away(FLOOD, ROUND_TRIP_S) as emu:
        yield emu


def hold_the_loop(seconds: float) -> None:
    """Work that keeps the bot's loop from running anything else; it lets go of the GIL,
    so the emulator's thread, like Telegram, counts arrivals on time meanwhile."""
    time.sleep(seconds)


async def busy_loop(stop: asyncio.Event) -> None:
    """Holds the bot's loop 5 to 30 ms at a time, giving it back only briefly in between."""
    rng = random.Random(7)
    while not stop.is_set():
        hold_the_loop(rng.uniform(0.005, 0.03))
        await asyncio.sleep(0)


async def send_everything(emu: BotApiEmulator, *, busy: bool) -> list[float]:
    """Every chat's messages at once through the limiter (the groups' first, so their
    window fills while the private chats keep the overall one full); the private chats'
    arrivals, as counted."""
    people = [emu.create_user(f"Reader {n}") for n in range(PRIVATE_CHATS)]
    chats: list[tuple[FakeChat, int]] = [
        (emu.create_chat("supergroup", f"Group {n}", creator=people[n]), PER_GROUP)
        for n in range(GROUPS)
    ]
    chats += [(emu.private_chat(p), PER_PRIVATE_CHAT) for p in people]
    bot = ExtBot(
        emu.token,
        base_url=emu.base_url,
        request=HTTPXRequest(connection_pool_size=64),
        rate_limiter=PriorityRateLimiter(TELEGRAM),
    )
    since = len(emu.calls)
    stop = asyncio.Event()
    hog = asyncio.create_task(busy_loop(stop)) if busy else None
    async with bot:
        await bot.get_me()
        await bot.set_my_commands([("start", "Start")])
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(
                    bot.send_message(chat.id, f"message {n}")
                    for chat, count in chats
                    for n in range(count)
                )
            )
    stop.set()
    if hog is not None:
        await hog
    sent = [call for call in emu.calls[since:] if call.method == "sendMessage"]
    assert emu.flood.served == 0, "a 429: a window held one call too many"
    assert len(sent) == sum(count for _, count in chats)
    assert all(call.error is None for call in sent)
    return sorted(call.at for call in sent if call.params["chat_id"] > 0)


async def test_round_trips_cost_no_throughput_and_no_window_is_overrun(
    far_telegram: BotApiEmulator,
) -> None:
    """Measured once the first second's burst is out and before the last chats' own
    one-a-second tail: the overall window is what holds the calls back there."""
    arrivals = await send_everything(far_telegram, busy=False)
    steady = arrivals[30:150]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    assert rate >= 0.85 * 30, f"{rate:.1f} calls/s: the round trip was paid on each cycle"


async def test_a_busy_bot_loop_still_overruns_no_window_as_telegram_counts(
    far_telegram: BotApiEmulator,
) -> None:
    await send_everything(far_telegram, busy=True)
