"""Telegram's budget spent by every replica together: 30 a second, 1 a second per chat,
20 a minute per group, answers first.

Each replica's own limiter (`bot.delivery.outbound.PriorityRateLimiter`) orders its calls
and keeps its own windows; before a call it has granted goes out, it also takes a slot in
the windows all replicas share here, in Redis. The windows are sorted sets of calls
scored by when each counts, on Redis's clock: a call in flight is scored `hold_s` ahead
(so it fills its slot until it comes back, and a replica that dies mid-call frees it
after that: longer than a Bot API call takes before PTB's timeouts end it, short enough
that a dead replica holds a chat up for seconds, not half a minute), then, once answered, rescored to its answer less the replica's shortest
round trip, as the limiter counts its own (see its module doc). No share is set aside
per replica, so one replica alone can use the whole budget.

Priorities across replicas: an answer that has to wait puts itself in a "waiting
answers" set (overall, and its chat's), renewed while it waits; a streaming update or a
chat action does not take a slot while an answer waits for the same window anywhere. A
429 that any replica sees pauses that chat (or everything) for every replica.

`_TAKE` does the whole decision in one step (a short Lua script: Redis runs it alone,
so two replicas cannot take the last slot together); `_RETURNED` scores or frees it.
While Redis cannot be reached each replica keeps to its own windows only.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import timedelta

from redis.asyncio import Redis

from bot.delivery.outbound import Budget, Priority, Window
from bot.replicas.redis_link import RedisLink

# KEYS: overall pause, chat pause, answers waiting overall, answers waiting in the chat,
#   then the windows (overall first, then the chat's).
# ARGV: call id, hold ms, priority (0 an answer), whether to wait ('wait' or 'now'),
#   then count and period ms of each window.
# Returns 0 when the call holds a slot in every window, else how many ms to wait.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id, hold, priority = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = math.max(redis.call('PTTL', KEYS[1]), redis.call('PTTL', KEYS[2]), 0)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
if priority > 0 and redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) > 0 then
  wait = math.max(wait, 20)
end
local blocked_overall, blocked_chat = false, false
for i = 5, #KEYS do
  local w = i - 4
  local count, period = tonumber(ARGV[3 + 2 * w]), tonumber(ARGV[4 + 2 * w])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - period)
  local used = redis.call('ZCARD', KEYS[i])
  if used >= count then
    local first = redis.call('ZRANGE', KEYS[i], used - count, used - count, 'WITHSCORES')
    local counted_at = tonumber(first[2])
    local free = counted_at + period - now
    if counted_at > now then free = 20 end
    wait = math.max(wait, free)
    if w == 1 then blocked_overall = true else blocked_chat = true end
  end
end
if wait > 0 then
  if priority == 0 and ARGV[4] == 'wait' then
    if blocked_overall then redis.call('ZADD', KEYS[3], now + 1000, id) end
    if blocked_chat then redis.call('ZADD', KEYS[4], now + 1000, id) end
  end
  return wait
end
redis.call('ZREM', KEYS[3], id)
redis.call('ZREM', KEYS[4], id)
for i = 5, #KEYS do
  local w = i - 4
  redis.call('ZADD', KEYS[i], now + hold, id)
  redis.call('PEXPIRE', KEYS[i], hold + tonumber(ARGV[4 + 2 * w]))
end
return 0
"""

# KEYS: the call's windows. ARGV: call id, 'counted' or 'refused', lead ms.
_RETURNED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #KEYS do
  if ARGV[2] == 'counted' then
    redis.call('ZADD', KEYS[i], 'XX', now - tonumber(ARGV[3]), ARGV[1])
  else
    redis.call('ZREM', KEYS[i], ARGV[1])
  end
end
return 1
"""

class SharedTelegramBudget:
    """The windows every replica's outbound limiter also takes a slot in."""

    def __init__(
        self,
        link: RedisLink,
        budget: Budget | None = None,
        *,
        namespace: str = "hfbot",
        hold_s: float = 10.0,
    ) -> None:
        self.budget = budget or Budget()
        self._prefix = f"{namespace}:tg"
        self._link = link
        self._hold_ms = int(hold_s * 1000)
        self._take = link.client.register_script(_TAKE)
        self._returned = link.client.register_script(_RETURNED)

    def _windows(self, chat_id: int | None) -> list[tuple[str, Window]]:
        chat = [] if chat_id is None else self.budget.for_chat(chat_id)
        names = ["per_chat", "group"]
        return [(f"{self._prefix}:overall", self.budget.overall)] + [
            (f"{self._prefix}:{name}:{chat_id}", window)
            for name, window in zip(names, chat, strict=False)
        ]

    async def take(
        self, priority: Priority, chat_id: int | None, *, wait: bool = True
    ) -> str | None:
        """Hold a slot in every shared window of this call, waiting while they are full
        (`wait` False: a chat action, which goes now or never). Returns the call's id; ""
        while Redis cannot be reached (the local windows alone); None when `wait` is False
        and no slot is free now."""
        call = uuid.uuid4().hex
        windows = self._windows(chat_id)
        chat = "none" if chat_id is None else str(chat_id)
        keys = [
            f"{self._prefix}:pause:overall",
            f"{self._prefix}:pause:{chat}",
            f"{self._prefix}:waiting:overall",
            f"{self._prefix}:waiting:{chat}",
            *(key for key, _ in windows),
        ]
        args: list[str | int] = [call, self._hold_ms, int(priority), "wait" if wait else "now"]
        for _, window in windows:
            args += [window.count, int(window.period_s * 1000)]

        async def take(client: Redis) -> int:
            return int(await self._take(keys=keys, args=args))

        while True:
            waiting_ms = await self._link.run(take)
            if waiting_ms is None:
                return ""
            if waiting_ms == 0:
                return call
            if not wait:
                return None
            await asyncio.sleep(waiting_ms / 1000)

    async def returned(
        self, call: str, chat_id: int | None, *, counted: bool, lead_s: float
    ) -> None:
        """The call came back: counted from its answer less `lead_s`, or (refused by
        Telegram, or never sent) not at all."""
        if not call:
            return
        keys = [key for key, _ in self._windows(chat_id)]
        args = [call, "counted" if counted else "refused", int(lead_s * 1000)]

        async def returned(client: Redis) -> object:
            return await self._returned(keys=keys, args=args)

        await self._link.run(returned)

    async def pause(self, chat_id: int | None, retry_after: float | timedelta) -> None:
        """Telegram said wait: every replica waits, into this chat (or anywhere)."""
        seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
        key = f"{self._prefix}:pause:{'overall' if chat_id is None else chat_id}"
        milliseconds = max(1, math.ceil(float(seconds) * 1000))

        async def pause(client: Redis) -> object:
            return await client.set(key, 1, px=milliseconds)

        await self._link.run(pause)
