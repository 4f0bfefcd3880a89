"""Fair turns across owners, and the line in front of an engine that holds a bounded number.

Every engine serves requests for owners (the person a request is for, an
opaque hashable here). `fair_order` is the one rule for who goes next: the
owner served longest ago first, one request per owner per round, each owner's
own requests in arrival order. Micro-batching applies it to each batch;
`FairLine` applies it to admission into an engine that runs a bounded number
of requests at once and takes the rest itself (transformers' continuous
batching keeps no line of its own that could say who is next or how far back).

A waiting request hears its place in line (1 = next) whenever it moves, and 0
once it is admitted. One owner holds at most an eighth of the slots
(`OWNER_SHARE`; 4 of the default 32, above the bot's own cap of 3 requests in
flight per person, so it binds only for callers that bypass that cap), so
neither one person's burst nor a few people's fill the engine: requests from
others that arrive just after still start at once. Only waiting requests can be withdrawn; an admitted one frees its
slots when its holder leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from bot.engine.controls import ProgressCallback

log = logging.getLogger(__name__)

PositionCallback = Callable[[int], None]
# Owners remembered as recently served; beyond this, only those with requests waiting are kept.
MAX_TRACKED_OWNERS = 10_000
# The most of a FairLine's slots one owner may hold (at least one slot).
OWNER_SHARE = 0.125


@dataclass(frozen=True)
class Caller:
    """Who a request is for: batches take turns across owners, and `on_position`, if set,
    hears the request's place in line as it moves (0 once it runs); `on_progress` hears
    the steps of a runner that works in steps (a picture's). Without an owner a request
    counts as its own."""

    owner: Hashable = None
    on_position: PositionCallback | None = None
    on_progress: ProgressCallback | None = None


ANONYMOUS = Caller()


class InLine(Protocol):
    """What `fair_order` reads of a waiting request."""

    @property
    def owner(self) -> Hashable: ...

    @property
    def enqueued_at(self) -> float: ...


Waiting = TypeVar("Waiting", bound=InLine)


def fair_order(requests: Iterable[Waiting], last_served: Mapping[Hashable, int]) -> list[Waiting]:
    """Requests in the order they should run: owners served longest ago first (then by
    their oldest request), one request per owner per round, each owner's own in arrival
    order."""
    by_owner: dict[Hashable, deque[Waiting]] = {}
    for request in requests:
        by_owner.setdefault(request.owner, deque()).append(request)
    owners = sorted(by_owner, key=lambda o: (last_served.get(o, -1), by_owner[o][0].enqueued_at))
    rounds = itertools.zip_longest(*(by_owner[owner] for owner in owners))
    return [request for round_ in rounds for request in round_ if request is not None]


def tell(on_position: PositionCallback | None, position: int) -> None:
    """Tell a listener its place; a listener's failure must not stop the line."""
    if on_position is None:
        return
    try:
        on_position(position)
    except Exception:
        log.exception("position callback failed")


@dataclass(eq=False)
class Ticket:
    """One request's place in a `FairLine`: `slots` it runs as, `tokens` of cache it may fill."""

    owner: Hashable
    enqueued_at: float
    slots: int
    tokens: int
    admitted: asyncio.Future[None]
    on_position: PositionCallback | None = None
    position: int | None = None

    def move_to(self, position: int) -> None:
        """Tell the caller where they stand, only when that changed."""
        if position != self.position:
            self.position = position
            tell(self.on_position, position)


class FairLine:
    """Admission into an engine that runs at most `max_slots` requests and `max_tokens` tokens.

    A request enters with `async with line.place(caller, slots=…, tokens=…)`: the
    block starts once the request's turn has come and there is room, and its room
    is given back when the block ends (answered, failed or cancelled). The head of
    the line in fair order waits for room rather than being overtaken by smaller
    requests behind it, so a long prompt is never starved; only an owner at their
    share is passed over. A request alone in an empty engine is always admitted,
    whatever its size (the engine refuses what can never fit before it queues).
    `max_slots=None` admits everything at once: no line, as before there was one.
    """

    def __init__(self, *, max_slots: int | None, max_tokens: int | None = None) -> None:
        if max_slots is not None and max_slots < 1:
            raise ValueError("max_slots must be at least 1")
        self._max_slots = max_slots
        self._max_tokens = max_tokens
        self._owner_share = (
            None if max_slots is None else max(1, math.ceil(max_slots * OWNER_SHARE))
        )
        self._waiting: list[Ticket] = []
        self._slots = 0
        self._tokens = 0
        self._by_owner: dict[Hashable, int] = {}
        self._admissions = itertools.count()
        self._last_served: dict[Hashable, int] = {}

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Slots held by admitted requests."""
        return self._slots

    @contextlib.asynccontextmanager
    async def place(self, caller: Caller, *, slots: int = 1, tokens: int = 0) -> AsyncIterator[None]:
        """Wait for this request's turn and room, hold them for the block, give them back."""
        loop = asyncio.get_running_loop()
        ticket = Ticket(
            owner=caller.owner if caller.owner is not None else object(),
            enqueued_at=loop.time(),
            slots=slots,
            tokens=tokens,
            admitted=loop.create_future(),
            on_position=caller.on_position,
        )
        self._waiting.append(ticket)
        self._admit()
        try:
            await ticket.admitted
        except asyncio.CancelledError:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
                self._admit()
                raise
            # admitted at the moment it was cancelled: it holds room that must go back
            self._leave(ticket)
            raise
        try:
            yield
        finally:
            self._leave(ticket)

    def _leave(self, ticket: Ticket) -> None:
        self._slots -= ticket.slots
        self._tokens -= ticket.tokens
        held = self._by_owner[ticket.owner] - ticket.slots
        if held:
            self._by_owner[ticket.owner] = held
        else:
            del self._by_owner[ticket.owner]
        self._admit()

    def _fits(self, ticket: Ticket) -> bool:
        if self._slots == 0:
            return True
        if self._max_slots is not None and self._slots + ticket.slots > self._max_slots:
            return False
        return self._max_tokens is None or self._tokens + ticket.tokens <= self._max_tokens

    def _over_share(self, ticket: Ticket) -> bool:
        held = self._by_owner.get(ticket.owner, 0)
        return (
            self._owner_share is not None
            and held > 0
            and held + ticket.slots > self._owner_share
        )

    def _admit(self) -> None:
        """Admit in fair order while there is room; then tell the rest their places."""
        while True:
            order = [t for t in fair_order(self._waiting, self._last_served) if not self._over_share(t)]
            if not order or not self._fits(order[0]):
                break
            self._start(order[0])
        self._tell_positions()

    def _start(self, ticket: Ticket) -> None:
        self._waiting.remove(ticket)
        self._slots += ticket.slots
        self._tokens += ticket.tokens
        self._by_owner[ticket.owner] = self._by_owner.get(ticket.owner, 0) + ticket.slots
        self._last_served[ticket.owner] = next(self._admissions)
        if len(self._last_served) > MAX_TRACKED_OWNERS:
            keep = {t.owner for t in self._waiting} | set(self._by_owner)
            self._last_served = {o: n for o, n in self._last_served.items() if o in keep}
        ticket.move_to(0)
        if not ticket.admitted.done():
            ticket.admitted.set_result(None)

    def _tell_positions(self) -> None:
        """Everyone waiting learns their place (1 = next); owners at their share come last,
        in the order they will be let in once their own requests finish."""
        if not any(t.on_position is not None for t in self._waiting):
            return
        order = fair_order(self._waiting, self._last_served)
        passed_over = [t for t in order if self._over_share(t)]
        ahead = [t for t in order if not self._over_share(t)]
        for place, ticket in enumerate(ahead + passed_over, 1):
            ticket.move_to(place)
