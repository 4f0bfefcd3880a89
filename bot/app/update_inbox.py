"""Nothing lost: each update is in the database before Telegram hears it arrived.

Telegram forgets an update once the bot acknowledged it: the webhook's 200,
or, when polling, the offset of the next getUpdates. Both the webhook route
and python-telegram-bot's updater hand each update to `update_queue.put`
before acknowledging it, so the queue is where the update is written down
(`RecordingUpdateQueue`); the update processor marks it done once its
handlers finished (`InboxUpdateProcessor`). On start, updates accepted and
never marked done, younger than the replay window, are put back on the queue
in arrival order, once at most (`UpdateInbox.replay`).

What this buys: a crash between the acknowledgement and the answer no longer
loses the request; it is answered after the restart. What it cannot buy is
exactly once: a crash after the answer was sent and before its done mark
committed answers it twice. While the database cannot be reached, updates are
served without being written down, as before: availability first.

Replicas of one bot (`HFBOT_REDIS_URL`) share the inbox: each row names the replica
handling it and until when (`replica`, `lease_s`); every replica renews its own claims
and takes over, as a replay, the rows whose replica stopped renewing (`keep_claims`).
A replica starting takes only those too, never what a live one is answering.

Only updates the access gate will let through are written down (`admits`,
the gate's own rule): a refused stranger's message is never stored, not even
until the next prune, and costs no write; it is refused again if Telegram
sends it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from telegram import Bot, Update

from bot.delivery.order import ChatOrderedUpdateProcessor, SharedOrder
from bot.errors import StoreUnavailable
from models.base import utcnow
from models.inbox import Claim
from models.store import Store

log = logging.getLogger(__name__)

# After a failed write, updates skip the inbox this long, so a hung database
# costs one update its timeout rather than every update.
SKIP_AFTER_FAILURE_S = 10.0


class UpdateInbox:
    """Records updates, marks them done in batches, replays the unanswered and prunes the rest."""

    def __init__(
        self,
        replay_window_s: float,
        *,
        max_replays: int = 1,
        replica: str | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self.replay_window = timedelta(seconds=replay_window_s)
        self.max_replays = max_replays
        self.replica = replica
        self.lease = timedelta(seconds=lease_s)
        self.replayed = 0
        self._store: Store | None = None
        self._admits: Callable[[Update], Awaitable[bool]] | None = None
        self._order: SharedOrder | None = None
        self._bot_id = 0
        self._skip_until = 0.0
        self._done: set[int] = set()
        self._flushing: asyncio.Task[None] | None = None

    def share_order(self, order: SharedOrder) -> None:
        """Replicas: each update takes its place in its chat's shared order as it is written
        down, before it is acknowledged (`bot.replicas.chat_order`)."""
        self._order = order

    def attach(
        self, store: Store, bot_id: int, admits: Callable[[Update], Awaitable[bool]]
    ) -> None:
        """Start recording into `store` the updates `admits` (updates before this are served
        unrecorded)."""
        self._store, self._bot_id, self._admits = store, bot_id, admits

    async def record(self, update: Update) -> bool:
        """Write the update down if the gate will let it through; False when it was written
        before (Telegram resent it).

        A resent update is either being handled now or was handled (or will be,
        by the replay), so it is not handled again.
        """
        store, admits = self._store, self._admits
        if store is None or admits is None or time.monotonic() < self._skip_until:
            return True
        if not await admits(update):
            return True
        chat = update.effective_chat
        try:
            new = await store.inbox.accept(
                self._bot_id,
                update.update_id,
                chat.id if chat else None,
                update.to_dict(),
                self._claim(),
            )
            if new and chat is not None and self._order is not None:
                # Its place in the chat's order before Telegram hears it arrived: a replica
                # that dies holding it leaves the place to whoever takes it over.
                await self._order.arrived(chat.id, update.update_id)
            return new
        except StoreUnavailable:
            self._skip_until = time.monotonic() + SKIP_AFTER_FAILURE_S
            log.warning("inbox unavailable: update %d is served unrecorded", update.update_id)
            return True

    def done(self, update: object) -> None:
        """Mark an update handled; marks made while one write runs go out together in the next."""
        if self._store is None or not isinstance(update, Update):
            return
        self._done.add(update.update_id)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._done and self._store is not None:
            batch, self._done = self._done, set()
            try:
                await self._store.inbox.done(self._bot_id, batch)
            except StoreUnavailable:
                log.warning(
                    "inbox: %d done marks lost; those updates may be answered twice "
                    "after a restart",
                    len(batch),
                )

    async def close(self) -> None:
        """Write the last done marks, then stop recording (before the store closes)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self._flush()
        self._store = None

    def _claim(self) -> Claim | None:
        """This replica's claim on what it handles from now on; None for a bot alone."""
        return None if self.replica is None else Claim(self.replica, utcnow() + self.lease)

    async def replay(self, queue: asyncio.Queue[object], bot: Bot) -> int:
        """Put updates accepted and never answered back on `queue`, oldest first (replicas:
        those no live replica holds).

        `put_nowait` bypasses the recording `put`: they are in the inbox already.
        """
        if self._store is None:
            return 0
        # Rows done in an earlier life go first: an update id is unique only among the
        # updates Telegram has not forgotten, and one seen again must be a new update.
        await self.prune()
        return await self._take_over(queue, bot)

    async def keep_claims(self, queue: asyncio.Queue[object], bot: Bot) -> int:
        """A replica's round: renew its own claims, take over those another let lapse."""
        claim = self._claim()
        if self._store is None or claim is None:
            return 0
        try:
            await self._store.inbox.renew(self._bot_id, claim)
        except StoreUnavailable:
            log.warning("inbox claims not renewed: store unavailable")
            return 0
        return await self._take_over(queue, bot)

    async def _take_over(self, queue: asyncio.Queue[object], bot: Bot) -> int:
        store = self._store
        if store is None:
            return 0
        since = utcnow() - self.replay_window
        try:
            found = await store.inbox.unanswered(
                self._bot_id, since, max_replays=self.max_replays, claim=self._claim()
            )
        except StoreUnavailable:
            log.warning("inbox unavailable: unanswered updates are not replayed now")
            return 0
        for item in found:
            update = Update.de_json(item.payload, bot)
            if update is not None:
                queue.put_nowait(update)
        if found:
            log.warning("handling %d updates again that were accepted but not answered", len(found))
        self.replayed += len(found)
        return len(found)

    async def prune(self) -> None:
        """Delete done rows and rows past the replay window (counted in the log as given up)."""
        if self._store is None:
            return
        try:
            done, given_up = await self._store.inbox.prune(
                self._bot_id, utcnow() - self.replay_window
            )
        except StoreUnavailable:
            log.warning("inbox pruning skipped: store unavailable")
            return
        if given_up:
            log.warning("%d accepted updates were never answered and are past replay", given_up)
        log.debug("inbox: pruned %d done updates", done)


class RecordingUpdateQueue(asyncio.Queue[object]):
    """The application's update queue: `put` writes an update to the inbox first.

    The webhook route answers Telegram only after `put` returned, and PTB's
    updater confirms an offset only after `put` returned for every update of
    the batch, so whatever Telegram considers delivered is in the database.
    """

    def __init__(self, inbox: UpdateInbox) -> None:
        super().__init__()
        self.inbox = inbox

    async def put(self, item: object) -> None:
        if isinstance(item, Update) and not await self.inbox.record(item):
            return
        await super().put(item)


class InboxUpdateProcessor(ChatOrderedUpdateProcessor):
    """Replies in order per chat (the parent), and each update marked done once handled."""

    def __init__(self, inbox: UpdateInbox, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self.inbox = inbox

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await super().do_process_update(update, coroutine)
        self.inbox.done(update)
