"""A chat's replies in order across replicas: the first reply to an update waits for every
earlier update of that chat, wherever it is being handled.

Telegram numbers a bot's updates in the order they happen. Each replica puts each update
it accepts in its chat's sorted set in Redis (scored by that number) with a lease,
renewed while the update is handled; the first reply to an update waits until no live
earlier update of its chat remains in the set, and the update leaves the set when its
handling ends. An entry whose replica died goes on holding its chat up for one more
lease, the time another replica needs to take that update over from the inbox (its
claim lapses with the same lease) and renew the entry, so it is still answered first;
one nobody takes over stops holding anyone up after that.

Each replica still orders the updates it holds itself (`bot.delivery.order`); this is
the part between replicas. While Redis cannot be reached, each replica orders its own.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from bot.replicas.redis_link import RedisLink

# KEYS: the chat's updates (sorted set), how long each holds its place (hash: update ->
# end, ms): two leases from its last renewal (the module doc says why the second).
# ARGV: update id, lease ms, 'arrive' | 'renew' | 'ahead'.
# 'ahead' drops the entries whose place ran out, then returns how many come before this one.
_ORDER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
if ARGV[3] == 'arrive' then
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]), ARGV[1])
end
if ARGV[3] ~= 'ahead' then
  redis.call('HSET', KEYS[2], ARGV[1], now + 2 * lease)
  redis.call('PEXPIRE', KEYS[1], lease * 3)
  redis.call('PEXPIRE', KEYS[2], lease * 3)
  return 0
end
local earlier = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local ahead = 0
for _, update in ipairs(earlier) do
  local ends = tonumber(redis.call('HGET', KEYS[2], update) or '0')
  if ends <= now then
    redis.call('ZREM', KEYS[1], update)
    redis.call('HDEL', KEYS[2], update)
  else
    ahead = ahead + 1
  end
end
return ahead
"""

# How often a reply waiting for another replica's earlier update looks again.
POLL_S = 0.02


class SharedChatOrder:
    """Where each chat's updates stand, for every replica."""

    def __init__(
        self, link: RedisLink, *, namespace: str = "hfbot", lease_s: float = 30.0
    ) -> None:
        self._link = link
        self._prefix = f"{namespace}:order"
        self._lease_ms = int(lease_s * 1000)
        self._order = link.client.register_script(_ORDER)
        self._held: set[tuple[int, int]] = set()

    def _keys(self, chat_id: int) -> list[str]:
        return [f"{self._prefix}:{chat_id}", f"{self._prefix}:{chat_id}:leases"]

    async def _run(self, chat_id: int, update_id: int, step: str) -> int | None:
        async def call(client: Redis) -> int:
            args: list[str | int] = [update_id, self._lease_ms, step]
            return int(await self._order(keys=self._keys(chat_id), args=args))

        return await self._link.run(call)

    async def arrived(self, chat_id: int, update_id: int) -> None:
        self._held.add((chat_id, update_id))
        await self._run(chat_id, update_id, "arrive")

    async def wait_turn(self, chat_id: int, update_id: int) -> bool:
        """Until no live earlier update of this chat is being handled on any replica (another
        process's progress: there is nothing in this one to await, so it looks again);
        False when Redis cannot be reached (each replica then orders its own)."""
        while ahead := await self._run(chat_id, update_id, "ahead"):  # noqa: ASYNC110
            await asyncio.sleep(POLL_S)
        return ahead is not None

    async def done(self, chat_id: int, update_id: int) -> None:
        self._held.discard((chat_id, update_id))

        async def call(client: Redis) -> object:
            chat, leases = self._keys(chat_id)
            async with client.pipeline(transaction=True) as both:
                both.zrem(chat, str(update_id))
                both.hdel(leases, str(update_id))
                return await both.execute()

        await self._link.run(call)

    async def renew(self) -> None:
        """Extend the lease of every update this replica is still handling."""
        for chat_id, update_id in list(self._held):
            await self._run(chat_id, update_id, "renew")
