"""Telegram's outbound budget, spent on answers first.

Telegram allows a bot about 30 messages a second overall, one a second in a
private chat and 20 a minute in a group, and answers 429 (retry after N
seconds) beyond. A busy bot cannot send everything at once, so what waits is
ordered: final answers first, then streaming updates (edits and drafts), then
chat actions. A chat action ("typing…") that cannot go at once is dropped, not
queued: by the time a slot frees it is stale, and it would only delay an answer.

Callers say what a request is with python-telegram-bot's `rate_limit_args`
(a `Priority`); anything unmarked is an answer. A 429 pauses the chat it hit (or
everything, if it hit the overall limit) for its retry_after and the request is
tried again, a couple of times at most.

Telegram counts a call when it arrives. The bot knows when a call left and when its
answer came back; the arrival lies between. Counting from when it left is not safe: a
busy CPU can hold a granted call back before its bytes go out, so it arrives late and
the next one, on time, lands less than a period after it. Counting from the answer is
safe (nothing arrives after its answer) but holds every slot a round trip beyond its
period: 30 a second become 24 at 250 ms. So a call is counted from its answer less the
shortest round trip seen, less a margin (`ARRIVAL_MARGIN_S`, for the network's own
jitter). A call arrived at least its answer's way back before the answer; the next call
arrives at least its own way out after it leaves; those two legs together are at least
the shortest round trip the network allows. Whatever else lengthens a trip (a busy CPU
before the bytes go out or before the answer is read, a connection being opened, a
burst of calls on the wire at once) only makes that call count later, which is safer,
as long as the shortest trip seen had none of it. So the shortest is trusted only once
a lone call (nothing else of the bot's in flight from when it left until its answer
came back, and not the limiter's first call, which opens a connection) came back in the
last hour; until then a call counts from its answer. An old shortest that is too short
for a network grown slower costs throughput, never safety. A call in flight holds its
slot.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum
from typing import Any, Protocol

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

log = logging.getLogger(__name__)

# Calls Telegram counts against the bot's overall rate only, not a chat's messages.
OVERALL_ONLY = frozenset({"sendChatAction", "sendMessageDraft"})
# How much quicker than the shortest round trip seen two calls' legs may be (module doc).
ARRIVAL_MARGIN_S = 0.025
# How long round trips are remembered (module doc), as the shortest of each bucket.
ROUND_TRIP_MEMORY_S = 3600.0
ROUND_TRIP_BUCKET_S = 60.0
# A slot that frees this soon is free now: a timer may fire up to the clock's resolution
# early, and two float sums of one instant can differ in their last bit, so without it the
# scheduler would wake, find the slot 1e-16 s short of free, and sleep for that again.
EARLY_WAKE_S = 1e-6

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


class Priority(IntEnum):
    """What a Bot API call is for; lower goes first."""

    ANSWER = 0
    STREAM = 1
    ACTION = 2


class SharedBudget(Protocol):
    """The windows other replicas of this bot spend too (`bot.replicas.shared_budget`)."""

    async def take(
        self, priority: Priority, chat_id: int | None, *, wait: bool = True
    ) -> str | None:
        """Hold a slot in each shared window, waiting while they are full: the call's id, ""
        while they cannot be reached, None when `wait` is False and no slot is free now."""
        ...

    async def returned(
        self, call: str, chat_id: int | None, *, counted: bool, lead_s: float
    ) -> None: ...

    async def pause(self, chat_id: int | None, retry_after: float | timedelta) -> None: ...


@dataclass(frozen=True)
class Window:
    """At most `count` calls in any `period_s` seconds (a sliding window)."""

    count: int
    period_s: float


@dataclass(frozen=True)
class Budget:
    """Telegram's limits, each counted over the arrivals of calls (see the module doc)."""

    overall: Window = Window(30, 1.0)
    per_chat: Window = Window(1, 1.0)
    group: Window = Window(20, 60.0)

    def for_chat(self, chat_id: int) -> tuple[Window, ...]:
        """Every chat takes one message a second; groups and channels (negative ids in the
        Bot API) also 20 a minute."""
        return (self.per_chat, self.group) if chat_id < 0 else (self.per_chat,)


class RoundTrips:
    """The shortest round trip of the last `memory_s`, kept as the shortest of each bucket
    of `bucket_s`, and when a lone call last came back (see the module doc)."""

    def __init__(
        self, memory_s: float = ROUND_TRIP_MEMORY_S, bucket_s: float = ROUND_TRIP_BUCKET_S
    ) -> None:
        self._memory_s = memory_s
        self._bucket_s = bucket_s
        self._buckets: deque[list[float]] = deque()  # [bucket start, shortest in it]
        self._lone_at = -math.inf

    def add(self, now: float, seconds: float, *, lone: bool) -> None:
        if self._buckets and now < self._buckets[-1][0] + self._bucket_s:
            self._buckets[-1][1] = min(self._buckets[-1][1], seconds)
        else:
            self._buckets.append([now, seconds])
        if lone:
            self._lone_at = now
        self._expire(now)

    def lead(self, now: float) -> float:
        """How long before its answer a call is counted: the shortest round trip less the
        margin once a lone call came back, else 0."""
        self._expire(now)
        if self._lone_at <= now - self._memory_s or not self._buckets:
            return 0.0
        shortest = min(bucket[1] for bucket in self._buckets)
        return max(0.0, shortest - ARRIVAL_MARGIN_S)

    def _expire(self, now: float) -> None:
        while self._buckets and self._buckets[0][0] <= now - self._memory_s:
            self._buckets.popleft()


@dataclass
class _Slots:
    """One window: calls in flight, and the moments the last ones were counted at (sorted)."""

    window: Window
    sent: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    paused_until: float = 0.0

    def free_at(self, now: float) -> float:
        """The earliest moment one more call fits; infinity while calls in flight fill the
        window (one coming back is what frees it)."""
        while self.sent and self.sent[0] <= now - self.window.period_s:
            self.sent.popleft()
        over = len(self.sent) + self.in_flight - self.window.count
        if over < 0:
            full_until = now
        elif over < len(self.sent):
            full_until = self.sent[over] + self.window.period_s
        else:
            full_until = math.inf
        return max(full_until, self.paused_until)

    @property
    def used(self) -> int:
        return len(self.sent) + self.in_flight


@dataclass(order=True)
class _Waiting:
    priority: int
    number: int
    chat_id: int | None = field(compare=False)
    granted: asyncio.Future[None] = field(compare=False)


class PriorityRateLimiter(BaseRateLimiter[Priority]):
    """Throttles every outgoing call to Telegram's budget, answers first (see module doc)."""

    def __init__(
        self,
        budget: Budget | None = None,
        *,
        max_retries: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget or Budget()
        self._max_retries = max_retries
        self._clock = clock
        self._overall = _Slots(self.budget.overall)
        self.round_trips = RoundTrips()
        self._trips = 0
        self._chats: dict[int, tuple[_Slots, ...]] = {}
        self._waiting: list[_Waiting] = []
        self._numbers = itertools.count()
        self._changed = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._shared: SharedBudget | None = None
        self.dropped_actions = 0

    def share(self, shared: SharedBudget) -> None:
        """Spend the budget with the other replicas of this bot: every call this limiter
        grants also takes a slot in the shared windows before it goes."""
        self._shared = shared

    async def initialize(self) -> None:
        """The scheduler starts with the first call that has to wait."""

    async def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler
        for waiting in self._waiting:
            if not waiting.granted.done():
                waiting.granted.cancel()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Priority | None,
    ) -> JSONResult:
        priority = Priority.ACTION if endpoint == "sendChatAction" else rate_limit_args
        priority = Priority.ANSWER if priority is None else priority
        chat_id = _chat_id(data)
        counted_in = None if endpoint in OVERALL_ONLY else chat_id
        for attempt in range(self._max_retries + 1):
            if priority is Priority.ACTION:
                if not self._take_now(chat_id, counted_in):
                    self.dropped_actions += 1
                    return True
            else:
                await self._wait_turn(priority, counted_in)
            shared = await self._take_shared(priority, counted_in)
            if shared is None:  # a chat action that finds the shared windows full
                self.dropped_actions += 1
                return True
            counted, left, answered = True, self._clock(), False
            trip, alone = self._trips, self._overall.in_flight == 1
            self._trips += 1
            try:
                result = await callback(*args, **kwargs)
                answered = True
                return result
            except RetryAfter as error:
                answered, counted = True, False  # Telegram refused it: it used no slot there
                if attempt == self._max_retries or priority is Priority.ACTION:
                    raise
                self._pause(counted_in, error.retry_after)
                if self._shared is not None:
                    await self._shared.pause(counted_in, error.retry_after)
                log.info("Telegram asked to wait %s s (%s); retrying", error.retry_after, endpoint)
            finally:
                lone = alone and trip > 0 and self._trips == trip + 1
                self._returned(
                    counted_in, counted=counted, left=left if answered else None, lone=lone
                )
                if shared and self._shared is not None:
                    lead_s = self.round_trips.lead(self._clock())
                    await self._shared.returned(
                        shared, counted_in, counted=counted, lead_s=lead_s
                    )
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _take_shared(self, priority: Priority, chat_id: int | None) -> str | None:
        """The shared slot of a call granted here ("" when alone or Redis is away; None: a
        chat action that cannot go now); the local slot is given back if none comes."""
        if self._shared is None:
            return ""
        try:
            shared = await self._shared.take(
                priority, chat_id, wait=priority is not Priority.ACTION
            )
        except BaseException:
            self._returned(chat_id, counted=False)
            raise
        if shared is None:
            self._returned(chat_id, counted=False)
        return shared

    def spare(self, chat_id: int) -> float:
        """How much of this chat's widest window is free now, 0 to 1; 0 while any call for
        the chat waits. Optional messages (a queue status line) go only where this is high,
        so they never take a slot an answer will need."""
        if self.queued(chat_id):
            return 0.0
        now = self._clock()
        widest = max(self._slots(chat_id), key=lambda slots: slots.window.period_s)
        if widest.free_at(now) > now:
            return 0.0
        return 1.0 - widest.used / widest.window.count

    def queued(self, chat_id: int | None = None) -> int:
        """Calls waiting for a slot (in one chat, or anywhere)."""
        return sum(1 for w in self._waiting if chat_id is None or w.chat_id == chat_id)

    def _slots(self, chat_id: int) -> tuple[_Slots, ...]:
        slots = self._chats.get(chat_id)
        if slots is None:
            if len(self._chats) >= 10_000:
                self._forget_quiet_chats()
            windows = self.budget.for_chat(chat_id)
            slots = self._chats[chat_id] = tuple(_Slots(window) for window in windows)
        return slots

    def _free_at(self, chat_id: int | None, now: float) -> float:
        """The earliest moment a call into this chat fits; `now` is passed in so that one
        scheduling pass compares every waiting call against the same instant."""
        free = self._overall.free_at(now)
        if chat_id is not None:
            free = max(free, *(slots.free_at(now) for slots in self._slots(chat_id)))
        return free

    def _windows(self, chat_id: int | None) -> tuple[_Slots, ...]:
        return (self._overall, *(self._slots(chat_id) if chat_id is not None else ()))

    def _record(self, chat_id: int | None) -> None:
        """A call leaves: it holds a slot in each of its windows until it comes back."""
        for slots in self._windows(chat_id):
            slots.in_flight += 1

    def _returned(
        self,
        chat_id: int | None,
        *,
        counted: bool,
        left: float | None = None,
        lone: bool = False,
    ) -> None:
        """A call came back (answered, if it `left` at a known moment; `lone`, see the
        module doc): counted from its answer less the shortest round trip, or, refused by
        Telegram, not at all."""
        now = self._clock()
        if left is not None:
            self.round_trips.add(now, now - left, lone=lone)
        at = now - self.round_trips.lead(now)
        for slots in self._windows(chat_id):
            slots.in_flight -= 1
            if counted:
                bisect.insort(slots.sent, at)
        self._changed.set()

    def _take_now(self, chat_id: int | None, counted_in: int | None) -> bool:
        """A chat action goes only into a free slot no waiting call could use instead: not
        while this chat has anything waiting (its answer is ready), nor while a waiting call
        anywhere could go now."""
        now = self._clock()
        if self._free_at(counted_in, now) > now or any(
            w.chat_id == chat_id or self._free_at(w.chat_id, now) <= now for w in self._waiting
        ):
            return False
        self._record(counted_in)
        return True

    async def _wait_turn(self, priority: Priority, chat_id: int | None) -> None:
        now = self._clock()
        if not self._waiting and self._free_at(chat_id, now) <= now:
            self._record(chat_id)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, _Waiting(priority, next(self._numbers), chat_id, granted))
        self._changed.set()
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule())
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._returned(chat_id, counted=False)  # granted, but the caller is gone
            else:
                self._waiting = [w for w in self._waiting if w.granted is not granted]
                heapq.heapify(self._waiting)
            raise

    async def _schedule(self) -> None:
        """Grant waiting calls in priority order as slots free; a chat that is full does not
        hold back the calls of other chats behind it."""
        while self._waiting:
            now = self._clock() + EARLY_WAKE_S
            soonest = None
            chosen = None
            for waiting in sorted(self._waiting):
                free = self._free_at(waiting.chat_id, now)
                if free <= now:
                    chosen = waiting
                    break
                soonest = free if soonest is None else min(soonest, free)
            if chosen is not None:
                self._waiting.remove(chosen)
                heapq.heapify(self._waiting)
                if not chosen.granted.done():
                    self._record(chosen.chat_id)
                    chosen.granted.set_result(None)
                continue
            self._changed.clear()
            delay = None if soonest is None or soonest == math.inf else max(0.0, soonest - now)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._changed.wait()

    def _pause(self, chat_id: int | None, retry_after: float | timedelta) -> None:
        """Nothing more into this chat (or anywhere) until Telegram said it may continue."""
        seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
        until = self._clock() + float(seconds)
        for slots in self._slots(chat_id) if chat_id is not None else (self._overall,):
            slots.paused_until = max(slots.paused_until, until)
        self._changed.set()

    def _forget_quiet_chats(self) -> None:
        now = self._clock()
        quiet = [
            chat_id
            for chat_id, slots in self._chats.items()
            if all(s.free_at(now) <= now and not s.used for s in slots)
        ]
        for chat_id in quiet:
            del self._chats[chat_id]


def _chat_id(data: dict[str, Any]) -> int | None:
    chat_id = data.get("chat_id")
    try:
        return int(chat_id) if chat_id is not None else None
    except (TypeError, ValueError):
        return None
