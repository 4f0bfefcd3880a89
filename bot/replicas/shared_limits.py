"""Each person's limits counted across every replica: requests a minute and requests in flight.

The rate limit is a moving window kept in Redis by the `limits` library (its
`MovingWindowRateLimiter`, one atomic script per hit), so a person gets
`rate_limit_per_minute` whichever replicas their messages land on.

The in-flight cap is a short script of our own (`_HOLD`), since no library keeps
leases: each admitted request holds a field in the person's Redis hash whose value
is when its lease ends, on Redis's clock (one clock for all replicas). The script
drops the person's expired holds, refuses past the cap, or adds this one, in one
step, so two replicas admitting at once cannot both take the last place. A held
request renews its lease every third of it; a replica that dies holding places gives
them back when their leases run out, within `lease_s`.

Either limit falls back on the process's own (the same class the bot uses alone)
while Redis cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis

from bot.admission.in_flight import RunningRequests
from bot.admission.rate_limit import UserRateLimiter
from bot.errors import RateLimited, TooManyInFlight
from bot.replicas.redis_link import UNREACHABLE, RedisLink

_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}


def limits_url(url: str) -> str:
    """The `limits` storage URL for a redis-py URL (`redis://…` → `async+redis://…`)."""
    scheme, rest = url.split("://", 1)
    return f"{_SCHEMES.get(scheme, scheme)}://{rest}"


class SharedRateLimiter:
    """Requests a minute per person, for all replicas together."""

    def __init__(
        self,
        link: RedisLink,
        per_minute: int,
        local: UserRateLimiter,
        *,
        namespace: str = "hfbot",
    ) -> None:
        self.per_minute = per_minute
        self._link = link
        self._local = local
        self._item = RateLimitItemPerMinute(max(per_minute, 1))
        self._storage = RedisStorage(
            limits_url(link.url),
            implementation="redispy",
            wrap_exceptions=True,
            key_prefix=f"{namespace}:rate",
            socket_timeout=link.timeout_s,
            socket_connect_timeout=link.timeout_s,
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def check(self, user_id: int) -> None:
        """Count one request, or raise RateLimited saying how long to wait."""
        if self.per_minute <= 0:
            return
        if not self._link.worth_trying():
            return await self._local.check(user_id)
        try:
            if await self._limiter.hit(self._item, str(user_id)):
                self._link.answered()
                return
            stats = await self._limiter.get_window_stats(self._item, str(user_id))
        except StorageError as error:
            self._link.failed(error)
            return await self._local.check(user_id)
        self._link.answered()
        raise RateLimited(seconds=max(1, math.ceil(stats.reset_time - time.time())))


# KEYS[1]: the person's holds (field: request id, value: lease end in ms, Redis's clock).
# ARGV: request id, cap, lease in ms, "renew" to extend a hold already taken ("count": how
# many live holds the person has).
# Returns 1 when the request holds a place, 0 when the cap is reached.
_HOLD = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lease = tonumber(ARGV[3])
if ARGV[4] ~= 'renew' then
  local holds = redis.call('HGETALL', KEYS[1])
  for i = 1, #holds, 2 do
    if tonumber(holds[i + 1]) <= ms then redis.call('HDEL', KEYS[1], holds[i]) end
  end
  if ARGV[4] == 'count' then return redis.call('HLEN', KEYS[1]) end
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ms + lease)
redis.call('PEXPIRE', KEYS[1], lease)
return 1
"""


class StopElsewhere(Protocol):
    """Who asks the other replicas to stop a person's requests (`bot.replicas.broadcast`)."""

    def on_cancel(self, stop: Callable[[int], object]) -> None: ...

    async def cancel(self, owner: int) -> None: ...


class SharedRunningRequests(RunningRequests):
    """Requests in flight per person, capped across replicas; /cancel and Stop stop them on
    every replica (`stop_elsewhere`)."""

    def __init__(
        self, link: RedisLink, *, namespace: str = "hfbot", lease_s: float = 30.0
    ) -> None:
        super().__init__()
        self._namespace = namespace
        self._link = link
        self._lease_ms = int(lease_s * 1000)
        self._hold = link.client.register_script(_HOLD)
        self._held_here: Counter[int] = Counter()
        self._elsewhere: StopElsewhere | None = None

    def stop_elsewhere(self, elsewhere: StopElsewhere) -> None:
        """A /cancel or Stop here reaches the other replicas through `elsewhere`, and theirs
        reach this one."""
        self._elsewhere = elsewhere
        elsewhere.on_cancel(self.cancel_here)

    async def cancel(self, user_id: int) -> int:
        """Stop this person's requests here and on every other replica; returns how many were
        running (those elsewhere counted by their places in flight)."""
        here = self.cancel_here(user_id)
        if self._elsewhere is None:
            return here
        await self._elsewhere.cancel(user_id)

        async def count(client: Redis) -> object:
            return await self._hold(keys=[self._key(user_id)], args=["", 0, 0, "count"])

        held = await self._link.run(count)
        return here + max(0, int(str(held or 0)) - self._held_here[user_id])

    def _key(self, user_id: int) -> str:
        return f"{self._namespace}:in_flight:{user_id}"

    @contextlib.asynccontextmanager
    async def admitted(self, user_id: int, limit: int) -> AsyncIterator[None]:
        key = self._key(user_id)
        request = uuid.uuid4().hex

        async def take(client: Redis) -> object:
            return await self._hold(keys=[key], args=[request, limit, self._lease_ms, "take"])

        held = await self._link.run(take)
        if held is None:  # Redis is down: this process's own count
            async with super().admitted(user_id, limit):
                yield
            return
        if not held:
            raise TooManyInFlight(limit=limit)
        renewing = asyncio.create_task(self._renew(key, request))
        self._held_here[user_id] += 1
        try:
            yield
        finally:
            renewing.cancel()
            self._held_here[user_id] -= 1
            if not self._held_here[user_id]:
                del self._held_here[user_id]
            with contextlib.suppress(*UNREACHABLE):
                await self._link.client.hdel(key, request)

    async def _renew(self, key: str, request: str) -> None:
        """Keep the lease of a request still running (a long download, a long answer)."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)

            async def renew(client: Redis) -> object:
                return await self._hold(keys=[key], args=[request, 0, self._lease_ms, "renew"])

            await self._link.run(renew)
