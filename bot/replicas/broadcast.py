"""What one replica tells all the others at once: a write they may have cached, and a
person's requests to stop.

Each replica caches what it read of people's and groups' settings (`models.database`,
for `settings_cache_ttl_s`). A write clears its own entry and publishes which one on a
Redis channel; every other replica, subscribed, clears the same entry as the message
arrives, instead of serving the old value until the TTL runs out. A replica ignores
its own messages (it cleared the entry already).

A /cancel, or a press of ■ Stop, lands on whichever replica the load balancer picked,
not necessarily the one running the request: the replica stops what it runs of that
person's and publishes the person, and every other stops theirs (`cancel`, `on_cancel`).

Pub/sub keeps nothing for a subscriber that is away: while Redis is down, or between
a dropped connection and the next subscription, messages are lost. So whenever the
subscription (re)starts, the replica drops its whole cache: a few extra reads, never
a stale setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable

from redis.asyncio import Redis

from bot.replicas.redis_link import UNREACHABLE, RedisLink
from models.database import Database

log = logging.getLogger(__name__)

RESUBSCRIBE_S = 1.0


class Broadcast:
    """Tells the other replicas what this one wrote or was asked to stop, and hears theirs."""

    def __init__(self, link: RedisLink, database: Database, *, namespace: str = "hfbot") -> None:
        self.channel = f"{namespace}:broadcast"
        self._link = link
        self._database = database
        self._replica = uuid.uuid4().hex
        self._listening: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._on_cancel: Callable[[int], object] | None = None

    async def start(self) -> None:
        """Listen, and publish each write from now on; returns once subscribed (or Redis is
        found down: it keeps trying in the background)."""
        self._database.on_forget(self._wrote)
        self._listening = asyncio.create_task(self._listen(), name="replica-broadcast")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._link.timeout_s * 4):
                await self._subscribed.wait()

    async def close(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        await asyncio.gather(*self._sending, return_exceptions=True)

    def _wrote(self, kind: str, owner: int, task: str | None) -> None:
        message = json.dumps({"from": self._replica, "kind": kind, "owner": owner, "task": task})
        sending = asyncio.get_running_loop().create_task(self._publish(message))
        self._sending.add(sending)
        sending.add_done_callback(self._sending.discard)

    def on_cancel(self, stop: Callable[[int], object]) -> None:
        """`stop(person)` when another replica was asked to stop that person's requests."""
        self._on_cancel = stop

    async def cancel(self, owner: int) -> None:
        """Ask every other replica to stop this person's requests."""
        await self._publish(json.dumps({"from": self._replica, "cancel": owner}))

    async def _publish(self, message: str) -> None:
        async def publish(client: Redis) -> int:
            return await client.publish(self.channel, message)

        await self._link.run(publish)

    async def _listen(self) -> None:
        listener = self._link.listener()
        try:
            await self._subscribe_for_ever(listener)
        finally:
            await listener.aclose()

    async def _subscribe_for_ever(self, listener: Redis) -> None:
        while True:
            try:
                async with listener.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self._database.drop_all()
                    self._subscribed.set()
                    self._link.answered()
                    async for message in pubsub.listen():
                        self._heard(message)
            except UNREACHABLE as error:
                self._link.failed(error)
                self._subscribed.clear()
                await asyncio.sleep(RESUBSCRIBE_S)

    def _heard(self, message: dict[str, object]) -> None:
        if message.get("type") != "message":
            return
        try:
            said = json.loads(str(message["data"]))
            if said["from"] == self._replica:
                return
            if "cancel" in said:
                if self._on_cancel is not None:
                    self._on_cancel(int(said["cancel"]))
                return
            self._database.drop(str(said["kind"]), int(said["owner"]), said["task"])
        except (ValueError, KeyError, TypeError):
            log.warning("an unreadable message on %s was ignored", self.channel)
