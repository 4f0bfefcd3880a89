"""Each person's daily quota counted across every replica: the requests still running.

What a quota counts is the usage log (PostgreSQL, shared already) plus the requests
that passed the check and are not logged yet. Those holds live in Redis here, one
hash per quota (field: the hold, value: when it lapses and the chat it counts in), so
a request running on one replica counts on every other. The check and the take are
one script (`_TAKE`): given each limit and the answered count the replica read from
the log, it drops lapsed holds, counts the live ones in each limit's chat, and takes
a place only if every limit has one; two replicas admitting a person's requests at
the same moment cannot both take the last place.

A replica that logs an answered request tells the others (`models.usage.SERVED`
through `broadcast`), so their cached counts include the row by the time its
hold is gone. While Redis cannot be reached, holds are kept by the process (the same
`LocalHolds` as one bot alone), and a hold taken in Redis just before it went away
lapses there on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis

from bot.replicas.redis_link import RedisLink
from models.usage import LocalHolds, QuotaHold, QuotaRoom

# KEYS[1]: the quota's holds (hash: hold id -> "<lapses, ms on Redis's clock>|<chat or ''>").
# ARGV: step ('take' | 'count'), hold id, lease ms, the hold's chat ('' for none), then three
# per limit: its size, its chat ('' for everywhere), the answered requests logged against it.
# 'take' returns 0 once held, else the 1-based index of the first limit without room;
# 'count' returns the live holds in ARGV[4]'s chat ('' : all of them).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holds = redis.call('HGETALL', KEYS[1])
local chats = {}
for i = 1, #holds, 2 do
  local lapses, chat = string.match(holds[i + 1], '^(%d+)|(.*)$')
  if tonumber(lapses) <= now then
    redis.call('HDEL', KEYS[1], holds[i])
  else
    table.insert(chats, chat)
  end
end
local function held_in(scope)
  local n = 0
  for _, chat in ipairs(chats) do
    if scope == '' or chat == scope then n = n + 1 end
  end
  return n
end
if ARGV[1] == 'count' then return held_in(ARGV[4]) end
for room = 0, (#ARGV - 4) / 3 - 1 do
  local at = 5 + room * 3
  if tonumber(ARGV[at + 2]) + held_in(ARGV[at + 1]) >= tonumber(ARGV[at]) then
    return room + 1
  end
end
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[2], (now + lease) .. '|' .. ARGV[4])
if redis.call('PTTL', KEYS[1]) < lease then redis.call('PEXPIRE', KEYS[1], lease) end
return 0
"""


def _chat(chat_id: int | None) -> str:
    return "" if chat_id is None else str(chat_id)


class SharedQuotaHolds:
    """Requests counted against their quotas until logged, for all replicas together."""

    def __init__(self, link: RedisLink, local: LocalHolds, *, namespace: str = "hfbot") -> None:
        self._link = link
        self._local = local
        self._prefix = f"{namespace}:quota"
        self._script = link.client.register_script(_TAKE)

    def _key(self, counted: int) -> str:
        return f"{self._prefix}:{counted}"

    async def take(self, hold: QuotaHold, rooms: Sequence[QuotaRoom]) -> int | None:
        args: list[str | int] = ["take", hold.id, int(hold.for_s * 1000), _chat(hold.chat_id)]
        for room in rooms:
            # Requests this replica held while Redis was down, and still runs, count too.
            held_here = await self._local.count(hold.counted, room.chat_id)
            args += [room.limit, _chat(room.chat_id), room.answered + held_here]

        async def take(client: Redis) -> int:
            return int(await self._script(keys=[self._key(hold.counted)], args=args))

        found = await self._link.run(take)
        if found is None:
            return await self._local.take(hold, rooms)
        return None if found == 0 else found - 1

    async def count(self, counted: int, chat_id: int | None) -> int:
        async def count(client: Redis) -> int:
            args: list[str | int] = ["count", "", 0, _chat(chat_id)]
            return int(await self._script(keys=[self._key(counted)], args=args))

        found = await self._link.run(count)
        return (found or 0) + await self._local.count(counted, chat_id)

    async def release(self, hold: QuotaHold) -> None:
        """Wherever it was taken: here while Redis was down, else in Redis."""
        await self._local.release(hold)

        async def release(client: Redis) -> int:
            return int(await client.hdel(self._key(hold.counted), hold.id))

        await self._link.run(release)
