"""Concurrent updates, replies in order per chat.

Updates run concurrently so the pool can batch requests from many users,
including users of one busy group. What must not interleave is what people
see: a chat's replies appear in the order its messages arrived. Each update
takes a ticket for its chat on arrival; the first message it sends waits
until every earlier update of that chat has sent its first message (or
finished without one). Later edits, such as streaming, do not wait.

A ticket also says when its update's way is known (`Ticket.settle`): a
conversation turn joins its conversation's line only once every earlier update
of the chat has settled, so a chat's turns line up in the order they arrived
(`handlers.request.chat_history.conversation_turn`). A turn waiting in that line
gives up its place in the reply order, letting later updates reply meanwhile.

Replicas of one bot share the order too (`share`, with `bot.replicas.chat_order`): a
first reply then also waits for the earlier updates of its chat that other replicas
are handling, and a conversation turn for those to settle, all in Telegram's numbering
of the updates rather than each replica's arrival order.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class SharedOrder(Protocol):
    """Where each chat's updates stand on every replica (`bot.replicas.chat_order`)."""

    async def arrived(self, chat_id: int, update_id: int) -> None: ...

    async def wait_turn(self, chat_id: int, update_id: int) -> bool:
        """Wait for every earlier update of the chat on any replica; False (at once) when
        the shared order cannot be reached."""
        ...

    async def settle(self, chat_id: int, update_id: int) -> None: ...

    async def wait_settled(self, chat_id: int, update_id: int) -> bool:
        """Wait for every earlier update of the chat on any replica to settle; False (at
        once) when the shared order cannot be reached."""
        ...

    async def done(self, chat_id: int, update_id: int) -> None: ...


@dataclass
class _ChatQueue:
    next_ticket: int = 0
    # The first ticket that has not released its place in the reply order; every one
    # before it has (`released` holds those after it that let go early).
    turn: int = 0
    released: set[int] = field(default_factory=set)
    # The same for settling: the first ticket whose way is not known yet.
    settled_upto: int = 0
    settled: set[int] = field(default_factory=set)
    # And for finishing: the first ticket whose update still runs.
    finished_upto: int = 0
    finished: set[int] = field(default_factory=set)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def mark(self, number: int, *, release: bool) -> None:
        """Settle `number` (and release its reply place too, if asked); advance past the
        tickets before which every one has."""
        self.settled_upto = _advance(self.settled_upto, self.settled, number)
        if release:
            self.turn = _advance(self.turn, self.released, number)

    def finish(self, number: int) -> None:
        self.finished_upto = _advance(self.finished_upto, self.finished, number)


def _advance(upto: int, ahead: set[int], number: int) -> int:
    """`number` is done: the first ticket not done, given that every one before `upto` is
    and `ahead` holds those after it that are (taken out of it as `upto` passes them)."""
    ahead.add(number)
    while upto in ahead:
        ahead.discard(upto)
        upto += 1
    return upto


@dataclass
class Ticket:
    """One update's place in its chat: when it may reply, and whether its way is known.

    Settled: this update will not join a conversation's line (`bot.admission.conversation_turns`)
    behind a later update: it joined one, needs none, or is done. A conversation turn
    joins its line only once every earlier update of the chat settled, so turns of one
    conversation line up in the order their messages arrived, however long each took to
    find out which conversation it continues.
    """

    queue: _ChatQueue
    number: int
    done: bool = False
    is_settled: bool = False
    # The order shared with other replicas, and where this update stands in it.
    shared: SharedOrder | None = None
    chat_id: int = 0
    update_id: int = 0
    _left_shared: bool = False

    async def wait_turn(self) -> None:
        """Block until every earlier update of this chat has replied or finished."""
        if self.done:
            return
        if self.shared is not None and await self.shared.wait_turn(self.chat_id, self.update_id):
            # The shared order holds this replica's updates too, by Telegram's numbering; the
            # local one (by arrival here) could disagree with it for an update taken over.
            return
        async with self.queue.changed:
            await self.queue.changed.wait_for(lambda: self.queue.turn >= self.number)

    async def release(self, *, until_sent: bool = False) -> None:
        """Let the chat's later updates reply once every earlier one has (settles it too).

        `until_sent`: the reply is queued here, not sent yet (a shared answer in a busy
        group), so this replica's next answer may queue behind it at once, but another
        replica's must wait for `sent`.
        """
        if not self.done:
            was_settled = self.is_settled
            self.done = self.is_settled = True
            async with self.queue.changed:
                self.queue.mark(self.number, release=True)
                self.queue.changed.notify_all()
            if until_sent and not was_settled and self.shared is not None:
                await self.shared.settle(self.chat_id, self.update_id)
        if not until_sent:
            await self.sent()

    async def sent(self) -> None:
        """The first reply is out: other replicas' later updates of the chat may reply."""
        if self.shared is not None and not self._left_shared:
            self._left_shared = True
            await self.shared.done(self.chat_id, self.update_id)

    async def settle(self) -> None:
        """This update's way is known: later conversation turns need not wait for it."""
        if self.is_settled:
            return
        self.is_settled = True
        async with self.queue.changed:
            self.queue.mark(self.number, release=False)
            self.queue.changed.notify_all()
        if self.shared is not None:
            await self.shared.settle(self.chat_id, self.update_id)

    async def wait_earlier_settled(self) -> None:
        """Block until every earlier update of this chat has settled (or replied, or finished).

        Shared: the earlier ones on every replica, in Telegram's numbering, as `wait_turn`.
        """
        if self.shared is not None and await self.shared.wait_settled(self.chat_id, self.update_id):
            return
        async with self.queue.changed:
            await self.queue.changed.wait_for(lambda: self.queue.settled_upto >= self.number)

    async def wait_earlier_finished(self) -> None:
        """Block until every earlier update of this chat, on this replica, has finished:
        what they store (a conversation answer, once shown) is then in the database."""
        async with self.queue.changed:
            await self.queue.changed.wait_for(lambda: self.queue.finished_upto >= self.number)

    async def finish(self) -> None:
        """This update has run to its end (the processor's last word on it)."""
        await self.release()
        async with self.queue.changed:
            self.queue.finish(self.number)
            self.queue.changed.notify_all()


_current: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "hfbot_ticket", default=None
)


def current_ticket() -> Ticket | None:
    return _current.get()


class ChatOrderedUpdateProcessor(BaseUpdateProcessor):
    """Runs up to `max_concurrent_updates` at once; replies stay in arrival order per chat."""

    def __init__(self, max_concurrent_updates: int = 256) -> None:
        super().__init__(max_concurrent_updates)
        self._chats: dict[int, _ChatQueue] = {}
        self.in_flight = 0
        self._idle = asyncio.Condition()
        self._shared: SharedOrder | None = None

    def share(self, shared: SharedOrder) -> None:
        """Keep each chat's replies in order with the other replicas' too."""
        self._shared = shared

    async def wait_idle(self) -> None:
        """Until no update is being processed (graceful shutdown drains with this)."""
        async with self._idle:
            await self._idle.wait_for(lambda: self.in_flight == 0)

    def _ticket(self, update: object) -> Ticket | None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            return None
        queue = self._chats.setdefault(chat.id, _ChatQueue())
        update_id = update.update_id if isinstance(update, Update) else 0
        ticket = Ticket(
            queue, queue.next_ticket, shared=self._shared, chat_id=chat.id, update_id=update_id
        )
        queue.next_ticket += 1
        return ticket

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Take this chat's next ticket, then run the handlers with it as the current ticket.

        PTB starts `do_process_update` in arrival order: updates that wait for a
        concurrency slot wait on a FIFO semaphore, so tickets follow arrival order.
        """
        ticket = self._ticket(update)
        token = _current.set(ticket)
        self.in_flight += 1
        try:
            if ticket is not None and ticket.shared is not None:
                await ticket.shared.arrived(ticket.chat_id, ticket.update_id)
            await coroutine
        finally:
            _current.reset(token)
            if ticket is not None:
                await ticket.finish()
                self._drop_if_idle(ticket, update)
            self.in_flight -= 1
            async with self._idle:
                self._idle.notify_all()

    def _drop_if_idle(self, ticket: Ticket, update: object) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        queue = ticket.queue
        if (
            chat is not None
            and self._chats.get(chat.id) is queue
            and queue.turn >= queue.next_ticket
        ):
            del self._chats[chat.id]

    async def initialize(self) -> None:
        """Nothing to set up: state is created per chat on demand."""

    async def shutdown(self) -> None:
        """Nothing to tear down."""
