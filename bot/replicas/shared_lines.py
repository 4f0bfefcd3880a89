"""Lines that every replica waits in, kept in Redis in Telegram's numbering.

A line is a chat's updates (`chat_order`) or a conversation's turns
(`conversation_line`): a sorted set of update ids, each scored by itself, since
Telegram numbers a bot's updates in the order they happen, and that numbering is
the one order all replicas agree on (each replica's own arrival order differs for an
update it took over from one that died). A member waits until no live earlier
member of its line remains.

Each member holds its place with a lease, renewed while its replica handles it
(`renew`, every third of `inbox_lease_s`): a member whose replica died goes on
holding its line for two leases from its last renewal, the time another replica
needs to take that update over from the inbox (its claim lapses with one lease) and
join again under the same number, so it still comes first; one nobody takes over
stops holding anyone up after that. A line may also note members as settled
(`settle`): the chat order's way of saying an update will not join a conversation
behind a later one (`bot.delivery.order.Ticket`).

Waiting is looking again: the member ahead is another process's progress, with
nothing in this one to await. The look is one short script, repeated at a growing
interval (20 ms, up to a quarter of a second), so a member that waits long for a
long answer costs Redis a few calls a second, and one that waits a moment hears of
its turn within one short interval.

A wait is bounded (`longest_wait_s`: the longest a request may take, and a lease):
what holds a line is another process's state, and a place that is somehow never
given back (a replica wedged but still renewing) must not silence a chat or a
conversation for good. Past the bound the member goes ahead, logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from bot.replicas.redis_link import RedisLink

# KEYS: the line (sorted set), how long each member holds its place (hash: member -> end,
# ms on Redis's clock), its settled members (set).
# ARGV: member, lease ms, step: 'join' | 'renew' | 'settle' | 'leave' | 'ahead' | 'unsettled'.
# 'ahead' drops the members whose place ran out and returns how many live ones come before
# this one; 'unsettled' the same, counting only those not settled.
_LINE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local lease = tonumber(ARGV[2])
local step = ARGV[3]
if step == 'join' or step == 'renew' or step == 'settle' then
  if step == 'join' then redis.call('ZADD', KEYS[1], tonumber(member), member) end
  if step == 'settle' then
    redis.call('SADD', KEYS[3], member)
  else
    redis.call('HSET', KEYS[2], member, now + 2 * lease)
  end
  for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], lease * 3) end
  return 0
end
if step == 'leave' then
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
  redis.call('SREM', KEYS[3], member)
  return 0
end
local earlier = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. member)
local ahead = 0
for _, other in ipairs(earlier) do
  local ends = tonumber(redis.call('HGET', KEYS[2], other) or '0')
  if ends <= now then
    redis.call('ZREM', KEYS[1], other)
    redis.call('HDEL', KEYS[2], other)
    redis.call('SREM', KEYS[3], other)
  elseif step == 'ahead' or redis.call('SISMEMBER', KEYS[3], other) == 0 then
    ahead = ahead + 1
  end
end
return ahead
"""

log = logging.getLogger(__name__)

FIRST_LOOK_S = 0.02
LONGEST_LOOK_S = 0.25

OnWait = Callable[[], Awaitable[None]]


class SharedLines:
    """Lines of one kind (`prefix`), each named by its caller, for every replica."""

    def __init__(
        self,
        link: RedisLink,
        prefix: str,
        *,
        lease_s: float = 30.0,
        longest_wait_s: float = 300.0,
    ) -> None:
        self._link = link
        self._prefix = prefix
        self._lease_ms = int(lease_s * 1000)
        self._longest_wait_s = longest_wait_s
        self._script = link.client.register_script(_LINE)
        self._held: set[tuple[str, int]] = set()

    def _keys(self, line: str) -> list[str]:
        base = f"{self._prefix}:{line}"
        return [base, f"{base}:leases", f"{base}:settled"]

    async def _run(self, line: str, member: int, step: str) -> int | None:
        async def call(client: Redis) -> int:
            args: list[str | int] = [member, self._lease_ms, step]
            return int(await self._script(keys=self._keys(line), args=args))

        return await self._link.run(call)

    async def join(self, line: str, member: int) -> bool:
        """Take this member's place (its number's); False when Redis cannot be reached."""
        if await self._run(line, member, "join") is None:
            return False
        self._held.add((line, member))
        return True

    async def settle(self, line: str, member: int) -> None:
        await self._run(line, member, "settle")

    async def wait_first(
        self,
        line: str,
        member: int,
        *,
        settled_only: bool = False,
        on_wait: OnWait | None = None,
    ) -> bool | None:
        """Until no live earlier member remains (`settled_only`: none that has not settled).

        Returns whether it had to wait, or None as soon as Redis cannot be reached (the
        caller then orders what its own process holds). `on_wait` is called once, when
        it turns out this member must wait. Past `longest_wait_s` it goes ahead.
        """
        step = "unsettled" if settled_only else "ahead"
        ahead = await self._run(line, member, step)
        if ahead is None or ahead == 0:
            return None if ahead is None else False
        if on_wait is not None:
            await on_wait()
        look = FIRST_LOOK_S
        give_up = time.monotonic() + self._longest_wait_s
        while ahead:
            if time.monotonic() >= give_up:
                log.warning(
                    "%s:%s went ahead of %d earlier in its line after %.0f s",
                    self._prefix, line, ahead, self._longest_wait_s,
                )
                break
            await asyncio.sleep(look)
            look = min(look * 1.5, LONGEST_LOOK_S)
            ahead = await self._run(line, member, step)
            if ahead is None:
                return None
        return True

    async def leave(self, line: str, member: int) -> None:
        self._held.discard((line, member))
        await self._run(line, member, "leave")

    async def renew(self) -> None:
        """Extend the lease of every member this replica still holds."""
        for line, member in list(self._held):
            await self._run(line, member, "renew")
