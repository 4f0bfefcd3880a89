"""Two replicas, one Telegram budget: as Telegram counts arrivals, no window is overrun
when two bot processes write into the same chats at once, and a 429 one of them meets
pauses the other too.

Each replica is the real PTB `ExtBot` with the bot's outbound limiter, sharing the
budget through the real Redis on 127.0.0.1:6379 (each test in a namespace of its own);
Telegram is the project's emulator on a thread of its own, a round trip away, with
flood control on. The group window is scaled down (3 in 5 s) so the test takes seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from telegram.ext import ExtBot
from telegram.request import HTTPXRequest

from bot.delivery.outbound import Budget, PriorityRateLimiter, Window
from bot.offline.emulator import BotApiEmulator, FloodLimits, RateWindow
from bot.offline.emulator.world import FakeChat
from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_budget import SharedTelegramBudget
from tests.support.loop_thread import far_telegram as emulator_far_away

REDIS = "redis://127.0.0.1:6379/0"
ROUND_TRIP_S = 0.1
TELEGRAM = Budget(overall=Window(30, 1.0), per_chat=Window(1, 1.0), group=Window(3, 5.0))
FLOOD = FloodLimits(
    overall=RateWindow(30, 1.0), per_chat=RateWindow(1, 1.0), group=RateWindow(3, 5.0)
)


@pytest.fixture
def far_telegram() -> Iterator[BotApiEmulator]:
    """The emulator on a thread of its own, ROUND_TRIP_S away, flood control on."""
    with emulator_far_away(FLOOD, ROUND_TRIP_S) as emu:
        yield emu


@contextlib.asynccontextmanager
async def replica(emu: BotApiEmulator, namespace: str | None) -> AsyncIterator[ExtBot[None]]:
    """One bot process's Telegram side: its own limiter, sharing the budget in `namespace`
    (None: not sharing, as two processes without Redis would)."""
    limiter = PriorityRateLimiter(TELEGRAM)
    link = RedisLink(REDIS)
    if namespace is not None:
        limiter.share(SharedTelegramBudget(link, TELEGRAM, namespace=namespace))
    bot: ExtBot[None] = ExtBot(
        emu.token,
        base_url=emu.base_url,
        request=HTTPXRequest(connection_pool_size=64),
        rate_limiter=limiter,
    )
    try:
        async with bot:
            await bot.get_me()
            yield bot
    finally:
        await link.close()


def chats(emu: BotApiEmulator) -> list[FakeChat]:
    people = [emu.create_user(f"Reader {n}") for n in range(24)]
    groups = [emu.create_chat("supergroup", f"Group {n}", creator=people[n]) for n in range(2)]
    return groups + [emu.private_chat(person) for person in people]


async def both_write(emu: BotApiEmulator, namespace: str | None) -> int:
    """Each replica sends two messages into every chat at once; the 429s Telegram served."""
    into = chats(emu)
    async with replica(emu, namespace) as one, replica(emu, namespace) as other:
        async with asyncio.timeout(60):
            await asyncio.gather(
                *(
                    bot.send_message(chat.id, f"message {n}")
                    for chat in into
                    for bot in (one, other)
                    for n in range(2)
                ),
                return_exceptions=True,
            )
    return emu.flood.served


async def test_two_replicas_sharing_the_budget_overrun_no_window(
    far_telegram: BotApiEmulator,
) -> None:
    served = await both_write(far_telegram, f"test:{uuid.uuid4().hex}")
    assert served == 0, "a 429: the replicas together held one call too many"
    sent = [c for c in far_telegram.calls if c.method == "sendMessage" and c.error is None]
    assert len(sent) == 26 * 4, "every message arrived"


async def test_two_replicas_each_on_its_own_budget_are_refused_by_telegram(
    far_telegram: BotApiEmulator,
) -> None:
    """What the shared budget prevents: each process alone within the limits, together not."""
    assert await both_write(far_telegram, None) > 0


async def test_a_429_one_replica_meets_pauses_that_chat_for_the_other(
    far_telegram: BotApiEmulator,
) -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    link = RedisLink(REDIS)
    try:
        budget = SharedTelegramBudget(link, TELEGRAM, namespace=namespace)
        chat = far_telegram.private_chat(far_telegram.create_user("Paused"))
        async with replica(far_telegram, namespace) as other:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await budget.pause(chat.id, 1.5)
            await other.send_message(chat.id, "after the pause")
            waited = loop.time() - started
    finally:
        await link.close()
    assert waited >= 1.3, f"sent {waited:.2f} s after a 1.5 s pause another replica was told"
