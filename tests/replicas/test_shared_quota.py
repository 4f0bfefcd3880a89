"""A person's daily quota, the same on every replica: requests still running on one count on
the others, the last place goes to one request however many replicas ask at once, and an
answer logged on one replica is in the other's counts at once, not after the cache's TTL.

Each "replica" is what one `hfbot run` builds (its store and `ReplicaSet`) on its own
connection to the real Redis on 127.0.0.1:6379 and one database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_quota import SharedQuotaHolds
from models.base import utcnow
from models.usage import LocalHolds, QuotaHold, QuotaRoom
from tests.replicas.test_shared_limits import replica_stores, someone
from tests.support.tcp_proxy import TcpProxy

REDIS = "redis://127.0.0.1:6379/0"


@contextlib.asynccontextmanager
async def holds(*urls: str) -> AsyncIterator[list[SharedQuotaHolds]]:
    """One replica's holds per Redis URL, all in one namespace nobody else uses."""
    namespace = f"test:{uuid.uuid4().hex}"
    links = [RedisLink(url) for url in urls]
    try:
        yield [
            SharedQuotaHolds(link, LocalHolds(time.monotonic), namespace=namespace)
            for link in links
        ]
    finally:
        for link in links:
            await link.close()


async def test_a_request_running_on_one_replica_counts_against_the_quota_on_the_other() -> None:
    person = someone()
    rooms = [QuotaRoom(limit=2, chat_id=None, answered=0)]
    async with holds(REDIS, REDIS) as (here, there):
        running = QuotaHold(person, -5, 60)
        assert await here.take(running, rooms) is None
        assert await there.take(QuotaHold(person, -6, 60), rooms) is None
        assert await here.take(QuotaHold(person, -5, 60), rooms) == 0, "two run: no room"
        assert await there.count(person, None) == 2
        assert await there.count(person, -6) == 1
        await here.release(running)
        assert await there.take(QuotaHold(person, -6, 60), rooms) is None


async def test_the_last_places_go_to_exactly_as_many_requests_as_fit_however_many_ask() -> None:
    person = someone()
    rooms = [QuotaRoom(limit=5, chat_id=None, answered=2)]
    async with holds(REDIS, REDIS, REDIS) as replicas:
        asks = [replicas[n % 3].take(QuotaHold(person, -5, 60), rooms) for n in range(12)]
        taken = [found for found in await asyncio.gather(*asks) if found is None]
    assert len(taken) == 3


async def test_a_hold_lapses_and_a_replica_cut_off_from_redis_holds_on_its_own() -> None:
    person = someone()
    rooms = [QuotaRoom(limit=1, chat_id=None, answered=0)]
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    async with holds(proxy.url, REDIS) as (cut_off, other):
        assert await cut_off.take(QuotaHold(person, -5, 0.2), rooms) is None
        assert await other.count(person, None) == 1
        await proxy.cut()
        # Redis is gone: its own holds count, and the lapsing one in Redis is not seen here.
        assert await cut_off.take(QuotaHold(person, -5, 60), rooms) is None
        assert await cut_off.take(QuotaHold(person, -5, 60), rooms) == 0
        deadline = asyncio.get_running_loop().time() + 2
        while await other.count(person, None):
            assert asyncio.get_running_loop().time() < deadline, "the hold never lapsed"
            await asyncio.sleep(0.05)


async def test_an_answer_logged_on_one_replica_is_counted_at_once_on_the_other(
    tmp_path: Path,
) -> None:
    async with replica_stores(tmp_path) as replicas:
        for store, replica in replicas:
            store.usage.share_holds(replica.quota_holds)
        (writer, _), (reader, _) = replicas
        person = someone()
        since = utcnow() - timedelta(minutes=1)
        assert await reader.usage.answered_since(person, since) == 0  # cached for an hour
        rooms = [QuotaRoom(limit=5, chat_id=None, answered=0)]

        async def answered_on_writer() -> None:
            assert await writer.usage.hold_served(person, person, rooms, for_s=60) is None
            assert await reader.usage.held(person) == 1, "held on the writer, seen on the reader"
            await writer.usage.log(
                user_id=person, chat_id=person, task="sentiment", model_id="m", latency_ms=5, ok=True
            )

        await asyncio.create_task(answered_on_writer())

        async def counted() -> int:
            # Nothing to await here: the message clears the cache on another connection, and
            # what is measured is how soon a read after the log sees it.
            while (found := await reader.usage.answered_since(person, since)) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.001)
            return found

        loop = asyncio.get_running_loop()
        logged = loop.time()
        assert await asyncio.wait_for(counted(), timeout=2) == 1
        assert loop.time() - logged < 0.5, "counted at once, not after the cache's hour"
        assert await reader.usage.held(person) == 0, "the hold became the row"
