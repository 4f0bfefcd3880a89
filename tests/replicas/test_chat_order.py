"""A chat's replies in order across replicas, and a dead replica holding no one up."""

from __future__ import annotations

import asyncio
import uuid

from bot.replicas.chat_order import SharedChatOrder
from bot.replicas.redis_link import RedisLink

REDIS = "redis://127.0.0.1:6379/0"
CHAT = -100123


async def test_a_reply_waits_for_the_earlier_update_another_replica_handles() -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    a, b = RedisLink(REDIS), RedisLink(REDIS)
    try:
        on_a = SharedChatOrder(a, namespace=namespace)
        on_b = SharedChatOrder(b, namespace=namespace)
        await on_a.arrived(CHAT, 41)
        await on_b.arrived(CHAT, 42)
        await on_b.arrived(CHAT + 1, 43)
        second = asyncio.create_task(on_b.wait_turn(CHAT, 42))
        await on_b.wait_turn(CHAT + 1, 43)  # another chat: nobody before it
        await on_a.wait_turn(CHAT, 41)  # the first of its chat
        assert not second.done(), "42 replied before 41 did"
        await on_a.done(CHAT, 41)
        await asyncio.wait_for(second, timeout=2)
    finally:
        await a.close()
        await b.close()


async def test_an_update_whose_replica_died_holds_no_one_up_once_its_lease_ends() -> None:
    namespace = f"test:{uuid.uuid4().hex}"
    a, b = RedisLink(REDIS), RedisLink(REDIS)
    try:
        dying = SharedChatOrder(a, namespace=namespace, lease_s=0.3)
        await dying.arrived(CHAT, 41)  # never done, never renewed
        living = SharedChatOrder(b, namespace=namespace)
        await living.arrived(CHAT, 42)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(living.wait_turn(CHAT, 42), timeout=3)
        assert 0.1 <= loop.time() - started < 2
    finally:
        await a.close()
        await b.close()
