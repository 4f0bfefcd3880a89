"""One replica polls Telegram at a time: the one holding the poller lease in the real Redis.

Each "replica" is a `PollLeader` on its own connection (a `TcpProxy` between it and Redis
where Redis must go away), asked once a round as `Polling` asks it; the last tests run
real PTB updaters under the lease against the emulator, which answers two getUpdates at
once with Telegram's 409 Conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from telegram import Bot
from telegram.ext import Updater

from bot.app.build import api_urls
from bot.app.polling import Polling
from bot.offline.emulator import BotApiEmulator
from bot.replicas.poll_leader import PollLeader
from bot.replicas.redis_link import RedisLink
from tests.support.tcp_proxy import TcpProxy

REDIS = "redis://127.0.0.1:6379/0"
LEASE_S = 0.6
RENEW_S = 0.15


@contextlib.asynccontextmanager
async def replicas(*urls: str) -> AsyncIterator[list[PollLeader]]:
    """A poller lease per URL, all for one bot no other test uses."""
    namespace = f"hfbot:test-{uuid.uuid4().hex[:12]}"
    links = [RedisLink(url, timeout_s=0.2) for url in urls]
    try:
        yield [
            PollLeader(link, namespace=namespace, lease_s=LEASE_S, renew_s=RENEW_S)
            for link in links
        ]
    finally:
        for link in links:
            await link.close()


async def rounds_until_leading(leader: PollLeader, within_s: float) -> float:
    """Seconds of rounds (one each `renew_s`, as `Polling` runs them) until it leads."""
    began = time.monotonic()
    while not await leader.hold():
        assert time.monotonic() - began < within_s, "it never took the lease"
        await asyncio.sleep(leader.renew_s)
    return time.monotonic() - began


async def both_rounds(
    poller: PollLeader, standby: PollLeader, seconds: float, *, standby_first: bool = False
) -> None:
    """Rounds of both for `seconds`: the poller goes on polling, the standby never starts."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if standby_first:
            assert not await standby.hold()
        assert await poller.hold()
        assert not await standby.hold()
        await asyncio.sleep(RENEW_S)


def poller_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.replicas.poll_leader" and r.levelno == logging.WARNING
    ]


async def test_of_two_replicas_exactly_one_polls_and_goes_on_polling_round_after_round() -> None:
    async with replicas(REDIS, REDIS) as (a, b):
        first = await asyncio.gather(a.hold(), b.hold())
        assert sorted(first) == [False, True]
        for _ in range(5):
            await asyncio.sleep(RENEW_S)
            assert await asyncio.gather(a.hold(), b.hold()) == first
    assert {a.role, b.role} == {"leader", "standby"}


async def test_a_poller_that_stops_renewing_is_replaced_within_a_lease_and_then_stands_by(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with replicas(REDIS, REDIS) as (dead, standby):
        assert await dead.hold()
        assert not await standby.hold()
        took = await rounds_until_leading(standby, within_s=LEASE_S * 3)
        # Back from a stall longer than its lease: it polls no more.
        assert not await dead.hold()
    assert LEASE_S - RENEW_S <= took <= LEASE_S + 2 * RENEW_S, took
    assert (dead.role, standby.role) == ("standby", "leader")
    assert sorted(poller_warnings(caplog)) == [
        "another replica holds the polling lease: this one stops polling",
        "the polling replica stopped renewing its lease: this one polls now",
    ]


async def test_a_poller_stopping_gives_its_lease_to_the_next_round_of_a_standby() -> None:
    async with replicas(REDIS, REDIS) as (stopping, standby):
        assert await stopping.hold()
        assert not await standby.hold()
        await stopping.release()
        assert await standby.hold()
        assert not await stopping.hold()


async def test_while_redis_is_down_the_poller_goes_on_polling_and_no_standby_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        async with replicas(proxy.url, proxy.url) as (poller, standby):
            assert await poller.hold()
            assert not await standby.hold()
            await proxy.cut()
            await both_rounds(poller, standby, LEASE_S * 1.5)  # the key lapses in Redis meanwhile
            await proxy.mend()
            # The standby that saw Redis down gives the poller a lease to take its key back,
            # even when it asks first.
            await both_rounds(poller, standby, LEASE_S * 1.5, standby_first=True)
    finally:
        await proxy.cut()
    assert (poller.role, standby.role) == ("leader", "standby")
    assert poller_warnings(caplog) == [], "the lease never changed hands"
    link_warnings = [r.getMessage() for r in caplog.records if r.name == "bot.replicas.redis_link"]
    assert len(link_warnings) == 4, link_warnings  # down, back: once each for each replica


async def test_a_standby_that_never_saw_redis_down_takes_a_lapsed_lease_at_once() -> None:
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        async with replicas(proxy.url, REDIS) as (cut_off, standby):
            assert await cut_off.hold()
            await proxy.cut()
            took = await rounds_until_leading(standby, within_s=LEASE_S * 3)
            assert await cut_off.hold(), "cut off, it cannot know: it goes on polling"
            await proxy.mend()
            assert not await cut_off.hold(), "it sees the other's lease and stands by"
    finally:
        await proxy.cut()
    assert took <= LEASE_S + 2 * RENEW_S


@contextlib.asynccontextmanager
async def polling_replica(
    emu: BotApiEmulator, leader: PollLeader
) -> AsyncIterator[tuple[Polling, asyncio.Queue[object]]]:
    base_url, file_url = api_urls(emu.url)
    queue: asyncio.Queue[object] = asyncio.Queue()
    updater = Updater(Bot(emu.token, base_url=base_url, base_file_url=file_url), queue)
    async with updater.bot, updater:
        polling = Polling(updater, leader)
        await polling.start()
        try:
            yield polling, queue
        finally:
            await polling.stop()


def conflicts(emu: BotApiEmulator) -> int:
    return sum(
        1 for c in emu.calls if c.method == "getUpdates" and "Conflict" in (c.error or "")
    )


async def test_two_updaters_under_the_lease_poll_one_at_a_time_and_a_lost_lease_stops_one(
) -> None:
    async with BotApiEmulator() as emu, replicas(REDIS, REDIS) as leaders:
        async with polling_replica(emu, leaders[0]) as (_, queue_a), polling_replica(
            emu, leaders[1]
        ) as (_, queue_b):
            queues = dict(zip(leaders, (queue_a, queue_b), strict=True))
            await emu.wait_until(lambda: emu.long_polls_waiting == 1, 10)
            person = emu.create_user("Ada")
            chat = emu.private_chat(person)
            for n in range(5):
                emu.send_message(person, chat, f"hello {n}")
            await emu.wait_until(lambda: not emu.pending_updates, 10)
            [first] = [leader for leader in leaders if leader.role == "leader"]
            assert [queues[leader].qsize() for leader in leaders].count(5) == 1
            assert queues[first].qsize() == 5

            # Another replica takes the key (the first one stalled past its lease, say): the
            # first stops polling on its next round, its last getUpdates without a wait.
            since = len(emu.calls)
            redis = Redis.from_url(REDIS)
            try:
                await redis.set(first.key, "another replica", px=int(LEASE_S * 1000))
                await emu.wait_for(
                    "getUpdates", lambda call: call.params.get("timeout") == 0, since=since
                )
                assert first.role == "standby"
                await redis.delete(first.key)
            finally:
                await redis.aclose()
            await emu.wait_until(lambda: emu.long_polls_waiting == 1, 10)
            emu.send_message(person, chat, "after the change")
            await emu.wait_until(lambda: not emu.pending_updates, 10)
            [now] = [leader for leader in leaders if leader.role == "leader"]
            assert queues[now].qsize() == (6 if now is first else 1)
    assert conflicts(emu) == 0
