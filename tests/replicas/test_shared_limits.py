"""Several replicas, one bot: a person's limits and settings are the same on every replica,
and a replica whose Redis goes away keeps answering on its own limits, then shares again.

Each "replica" here is what one `hfbot run` process builds (`ReplicaSet` and its parts) on
its own connection to the real Redis on 127.0.0.1:6379; a `TcpProxy` stands between one
of them and Redis where a test needs Redis to go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.admission.rate_limit import UserRateLimiter
from bot.config import Settings
from bot.errors import RateLimited, TooManyInFlight
from bot.replicas.redis_link import RedisLink
from bot.replicas.replica_set import ReplicaSet
from bot.replicas.shared_limits import SharedRateLimiter, SharedRunningRequests
from bot.tasks import param_rules_from_caps
from models import migrate
from models.database import create_engine
from models.store import Store
from tests.support.tcp_proxy import TcpProxy

REDIS = "redis://127.0.0.1:6379/0"


def someone() -> int:
    """A person no other test (or earlier run) has counted in Redis."""
    return random.randrange(10**12, 10**13)


@contextlib.asynccontextmanager
async def linked(url: str = REDIS, **options: float) -> AsyncIterator[RedisLink]:
    link = RedisLink(url, **options)
    try:
        yield link
    finally:
        await link.close()


async def test_a_persons_requests_a_minute_count_on_every_replica_together() -> None:
    person = someone()
    async with linked() as a, linked() as b:
        replicas = [SharedRateLimiter(link, 3, UserRateLimiter(3)) for link in (a, b)]
        for n in range(3):
            await replicas[n % 2].check(person)
        with pytest.raises(RateLimited) as refused:
            await replicas[1].check(person)
        with pytest.raises(RateLimited):
            await replicas[0].check(person)
        await replicas[0].check(someone())  # someone else still may
    assert 1 <= refused.value.values["seconds"] <= 60


async def test_the_in_flight_cap_holds_across_replicas_and_a_place_freed_on_one_is_free_on_all(
) -> None:
    person = someone()
    async with linked() as a, linked() as b:
        on_a, on_b = SharedRunningRequests(a), SharedRunningRequests(b)
        async with on_a.admitted(person, 2), on_b.admitted(person, 2):
            for replica in (on_a, on_b):
                with pytest.raises(TooManyInFlight):
                    async with replica.admitted(person, 2):
                        pass
        async with on_b.admitted(person, 2), on_b.admitted(person, 2):
            pass


async def test_a_replica_cut_off_while_holding_a_place_gives_it_back_when_its_lease_ends() -> None:
    person = someone()
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    async with linked(proxy.url) as lost, linked() as staying:
        holder = SharedRunningRequests(lost, lease_s=0.6)
        other = SharedRunningRequests(staying, lease_s=0.6)
        hold = holder.admitted(person, 1)
        await hold.__aenter__()
        with pytest.raises(TooManyInFlight):
            async with other.admitted(person, 1):
                pass
        await proxy.cut()  # the holder can neither renew nor give its place back

        async def admitted_at_last() -> None:
            while True:
                try:
                    async with other.admitted(person, 1):
                        return
                except TooManyInFlight:
                    await asyncio.sleep(0.05)

        await asyncio.wait_for(admitted_at_last(), timeout=5)
        await hold.__aexit__(None, None, None)


async def test_without_redis_each_replica_keeps_its_own_limits_says_so_once_then_shares_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    person = someone()
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    async with linked(proxy.url, retry_s=0.0) as a, linked() as b:
        on_a = SharedRateLimiter(a, 2, UserRateLimiter(2))
        on_b = SharedRateLimiter(b, 2, UserRateLimiter(2))
        await on_b.check(person)
        await on_b.check(person)
        await proxy.cut()
        with caplog.at_level(logging.WARNING, logger="bot.replicas.redis_link"):
            await on_a.check(person)  # Redis unreachable from A: A's own window, still open
            await on_a.check(person)
            with pytest.raises(RateLimited):
                await on_a.check(person)
            assert not a.up
            await proxy.mend()
            with pytest.raises(RateLimited):  # shared again: B's two count
                await on_a.check(person)
            assert a.up
        said = [record.getMessage() for record in caplog.records]
        assert len([line for line in said if "cannot be reached" in line]) == 1, said
        assert any("answers again" in line for line in said)
        assert all("6379" not in line or str(proxy.port) in line for line in said)


@contextlib.asynccontextmanager
async def replica_stores(tmp_path: Path) -> AsyncIterator[list[tuple[Store, ReplicaSet]]]:
    """Two replicas' stores on one database (each caching for an hour), each with its
    `ReplicaSet` started on the real Redis."""
    url = f"sqlite+aiosqlite:///{tmp_path}/shared.db"
    await migrate.upgrade(create_engine(url))
    settings = Settings(telegram_bot_token=None, redis_url=REDIS)
    stores = [
        Store(create_engine(url), rules=param_rules_from_caps(256, 3), cache_ttl_s=3600)
        for _ in range(2)
    ]
    replicas = [ReplicaSet(REDIS, settings, store.database) for store in stores]
    try:
        for replica in replicas:
            await replica.start()
        yield list(zip(stores, replicas, strict=True))
    finally:
        for replica in replicas:
            await replica.close()
        for store in stores:
            await store.close()


async def test_a_setting_saved_on_one_replica_is_seen_by_the_next_read_on_another(
    tmp_path: Path,
) -> None:
    async with replica_stores(tmp_path) as [(writer, _), (reader, _)]:
        person = someone()
        assert await reader.preferences.get_options(person) == {}  # cached for an hour
        await writer.preferences.set_options(person, {"stream": "edit"})

        async def seen() -> dict[str, object]:
            # Nothing to await here: the message clears the cache on another connection, and
            # what is measured is how soon a read after the write sees it.
            while (options := await reader.preferences.get_options(person)) == {}:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            return options

        loop = asyncio.get_running_loop()
        written = loop.time()
        assert await asyncio.wait_for(seen(), timeout=2) == {"stream": "edit"}
        assert loop.time() - written < 0.5, "seen at once, not after the cache's hour"
