"""Which replica polls Telegram: the one holding a short lease in Redis, the others stand by.

Telegram serves one getUpdates at a time per bot: a second one answers the first with
409 Conflict ("terminated by other getUpdates request"), so two replicas polling would
take turns cutting each other off. The lease is redis-py's own `Lock` (SET NX PX, and a
script that renews it only for the token that took it) on `<namespace>:poller`, held
for `lease_s` and renewed every `renew_s`; a standby tries to take it as often. A
poller killed outright stops renewing, and a standby polls within about one lease.

The decisions, each made so that no two replicas poll while Redis can tell them apart:

- A renewal refused because another replica holds the lease (this one stalled past it):
  stop polling at once and stand by. Its last getUpdates (PTB's, confirming what it
  fetched) may cut the new poller's long poll once: one 409, polled again a second later.
- A renewal refused because the key is gone (Redis restarted, or lost it): take it back
  if nobody else has; nothing changes for anyone.
- Redis unreachable (or refusing commands): the poller goes on polling, so the bot keeps
  answering (stopping would leave nobody polling), and a standby does not start (it
  cannot know that nobody polls, and nobody can take the lease). When Redis answers
  again, a standby that saw it down waits one more lease before trying, so a poller
  that went on polling through the outage takes its lease back first.
- A poller stopping (SIGTERM) gives the lease back only after its last getUpdates, so
  the replica taking over is never cut off by it.

What a replica cut off from Redis while the others still reach it (a network split,
not Redis down) does: it goes on polling while another takes the lease, and the two
poll in turn with 409s, each answering what it fetched, until it reaches Redis again
and stands by. Nothing is lost meanwhile: Telegram forgets an update only once a
getUpdates confirmed it, and the inbox drops one it already wrote down
(`bot.app.update_inbox`), so an update is answered at least once, at most twice.

Redis going down and coming back is logged by `RedisLink`, once each; the lease's own
changes of hands once each here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Literal

from redis.exceptions import LockError, LockNotOwnedError, RedisError

from bot.replicas.redis_link import UNREACHABLE, RedisLink

log = logging.getLogger(__name__)

# A SIGKILLed poller is replaced within about LEASE_S; a poller whose event loop stalls
# longer than LEASE_S - RENEW_S loses the lease to another.
LEASE_S = 5.0
RENEW_S = 1.0

Role = Literal["leader", "standby"]

# Unreachable, or refusing commands (out of memory, a read-only replica): alike here.
REFUSED: tuple[type[Exception], ...] = (RedisError, *UNREACHABLE)


class PollLeader:
    """Whether this replica is the one that polls, asked once a round (`hold`)."""

    def __init__(
        self,
        link: RedisLink,
        *,
        namespace: str = "hfbot",
        lease_s: float = LEASE_S,
        renew_s: float = RENEW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.role: Role | None = None
        self._link = link
        self._clock = clock
        self.key = f"{namespace}:poller"
        self._lock = link.client.lock(
            self.key, timeout=lease_s, blocking=False, thread_local=False
        )
        # A standby takes no lease before this (infinite while Redis is down).
        self._not_before = 0.0

    async def hold(self) -> bool:
        """One round, every `renew_s`: renew the lease or try to take it; True while this
        replica is to poll."""
        leading = self.role == "leader"
        try:
            leading = await (self._renew() if leading else self._take())
        except REFUSED as error:
            self._link.failed(error)
            if not leading:
                self._not_before = math.inf
        else:
            self._link.answered()
        self._became("leader" if leading else "standby")
        return leading

    async def _renew(self) -> bool:
        try:
            return bool(await self._lock.reacquire())
        except LockNotOwnedError:
            # Gone, or another's: SET NX tells which, and takes it back if gone.
            return bool(await self._lock.acquire(blocking=False))

    async def _take(self) -> bool:
        if self._clock() < self._not_before:
            await self._link.client.ping()
            if self._not_before == math.inf:
                self._not_before = self._clock() + self.lease_s
            return False
        return bool(await self._lock.acquire(blocking=False))

    def _became(self, role: Role) -> None:
        was, self.role = self.role, role
        if was == role:
            return
        if was is None:
            log.info(
                "%s",
                "this replica polls Telegram"
                if role == "leader"
                else "another replica polls Telegram; this one stands by",
            )
        elif role == "leader":
            log.warning("the polling replica stopped renewing its lease: this one polls now")
        else:
            log.warning("another replica holds the polling lease: this one stops polling")

    async def release(self) -> None:
        """Give the lease back (a graceful stop, after the last getUpdates); one Redis cannot
        take back lapses on its own within `lease_s`."""
        if self.role != "leader":
            return
        self.role = None
        with contextlib.suppress(LockError, *UNREACHABLE):
            await self._lock.release()
