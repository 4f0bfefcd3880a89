"""One conversation, one turn at a time, across replicas: two messages of one conversation
landing on two replicas wait in one line in Redis, in the order Telegram numbered them;
a replica that died holds nobody up past its lease, and one cut off from Redis keeps a
line of its own.

Each "replica" is what one `hfbot run` builds: a `ConversationTurns` shared through its
own connection to the real Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

from bot.admission.conversation_turns import ConversationTurns
from bot.replicas.chat_order import SharedChatOrder
from bot.replicas.redis_link import RedisLink
from bot.replicas.shared_lines import SharedLines
from tests.support.tcp_proxy import TcpProxy

REDIS = "redis://127.0.0.1:6379/0"
CONVERSATION = (-100123, None, 7)


@contextlib.asynccontextmanager
async def replicas(
    count: int, *, lease_s: float = 30.0, url: str = REDIS
) -> AsyncIterator[list[ConversationTurns]]:
    """`count` replicas' conversation lines, sharing one namespace nobody else uses."""
    namespace = f"test:{uuid.uuid4().hex}"
    links = [RedisLink(url) for _ in range(count)]
    try:
        found = []
        for link in links:
            turns = ConversationTurns()
            turns.share(SharedLines(link, f"{namespace}:conversation", lease_s=lease_s))
            found.append(turns)
        yield found
    finally:
        for link in links:
            await link.close()


async def test_a_turn_on_one_replica_waits_for_the_turn_another_replica_holds() -> None:
    async with replicas(2) as (a, b):
        order: list[int] = []
        inside = asyncio.Event()
        finish = asyncio.Event()
        heard_wait = asyncio.Event()

        async def first() -> None:
            async with a.turn(CONVERSATION, place=41) as waited:
                assert not waited
                inside.set()
                await finish.wait()
                order.append(41)

        async def noted() -> None:
            heard_wait.set()

        async def second() -> bool:
            async with b.turn(CONVERSATION, place=42, on_wait=noted) as waited:
                order.append(42)
                return waited

        holding = asyncio.create_task(first())
        await inside.wait()
        waiting = asyncio.create_task(second())
        # Another conversation on the same replica goes ahead at once.
        async with b.turn((-100123, None, 8), place=43) as other_waited:
            assert not other_waited
        await asyncio.wait_for(heard_wait.wait(), timeout=3)
        assert order == []
        finish.set()
        assert await asyncio.wait_for(waiting, timeout=3), "the second turn did not wait"
        await holding
        assert order == [41, 42]


async def test_turns_waiting_on_two_replicas_go_in_telegrams_numbering() -> None:
    async with replicas(3) as (a, b, c):
        order: list[int] = []
        finish = asyncio.Event()
        inside = asyncio.Event()

        async def hold() -> None:
            async with a.turn(CONVERSATION, place=10):
                inside.set()
                await finish.wait()

        async def take(turns: ConversationTurns, place: int, joined: asyncio.Event) -> None:
            async def heard() -> None:
                joined.set()

            async with turns.turn(CONVERSATION, place=place, on_wait=heard):
                order.append(place)

        holding = asyncio.create_task(hold())
        await inside.wait()
        # 12 asks first, on one replica; 11 after it, on another: 11 still goes first.
        joined_12, joined_11 = asyncio.Event(), asyncio.Event()
        later = asyncio.create_task(take(c, 12, joined_12))
        await joined_12.wait()
        earlier = asyncio.create_task(take(b, 11, joined_11))
        await joined_11.wait()
        finish.set()
        await asyncio.wait_for(asyncio.gather(holding, later, earlier), timeout=3)
        assert order == [11, 12]


async def test_a_turn_held_by_a_replica_that_died_holds_nobody_up_past_two_leases() -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    dead, alive = RedisLink(REDIS), RedisLink(REDIS)
    try:
        # The dead replica's turn: taken, never renewed, never left.
        await SharedLines(dead, f"{namespace}:conversation", lease_s=0.3).join("-100123:-:7", 41)
        turns = ConversationTurns()
        turns.share(SharedLines(alive, f"{namespace}:conversation"))
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(3), turns.turn(CONVERSATION, place=42) as waited:
            assert waited
        assert 0.3 <= loop.time() - started < 2
    finally:
        await dead.close()
        await alive.close()


async def test_a_replica_cut_off_from_redis_keeps_a_line_of_its_own() -> None:
    proxy = await TcpProxy("127.0.0.1", 6379).start()
    try:
        async with replicas(1, url=proxy.url) as (cut_off,):
            await proxy.cut()
            order: list[int] = []
            inside, finish = asyncio.Event(), asyncio.Event()

            async def first() -> None:
                async with cut_off.turn(CONVERSATION, place=41):
                    inside.set()
                    await finish.wait()
                    order.append(41)

            async def second() -> None:
                async with cut_off.turn(CONVERSATION, place=42) as waited:
                    assert waited
                    order.append(42)

            holding = asyncio.create_task(first())
            await asyncio.wait_for(inside.wait(), timeout=3)
            waiting = asyncio.create_task(second())
            await asyncio.sleep(0.1)
            assert order == []
            finish.set()
            await asyncio.wait_for(asyncio.gather(holding, waiting), timeout=3)
            assert order == [41, 42]
    finally:
        await proxy.cut()


async def test_a_turn_joins_only_once_every_earlier_update_of_its_chat_settled() -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    a, b = RedisLink(REDIS), RedisLink(REDIS)
    try:
        on_a = SharedChatOrder(a, namespace=namespace)
        on_b = SharedChatOrder(b, namespace=namespace)
        await on_a.arrived(-100123, 41)
        await on_b.arrived(-100123, 42)
        waiting = asyncio.create_task(on_b.wait_settled(-100123, 42))
        assert await on_a.wait_settled(-100123, 41)  # nothing before it
        await asyncio.sleep(0.1)
        assert not waiting.done(), "42 went on while 41's way was not known"
        await on_a.settle(-100123, 41)
        assert await asyncio.wait_for(waiting, timeout=2)
        # Settled is not done: 41 still replies first.
        replying = asyncio.create_task(on_b.wait_turn(-100123, 42))
        await asyncio.sleep(0.1)
        assert not replying.done()
        await on_a.done(-100123, 41)
        assert await asyncio.wait_for(replying, timeout=2)
    finally:
        await a.close()
        await b.close()


async def test_a_line_held_for_good_is_waited_in_only_as_long_as_the_bound() -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    wedged, alive = RedisLink(REDIS), RedisLink(REDIS)
    try:
        # A place never given back, and renewed for good (a replica wedged but alive).
        holder = SharedLines(wedged, f"{namespace}:conversation")
        await holder.join("-100123:-:7", 41)
        turns = ConversationTurns()
        turns.share(SharedLines(alive, f"{namespace}:conversation", longest_wait_s=0.3))
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with asyncio.timeout(3), turns.turn(CONVERSATION, place=42) as waited:
            assert waited
        assert 0.3 <= loop.time() - started < 2
    finally:
        await wedged.close()
        await alive.close()
