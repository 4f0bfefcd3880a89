"""The fair line in front of an engine that runs a bounded number of requests.

Each request is a task holding its place in `FairLine.place` until the test lets
it finish, so "running" and "waiting" are states the test sets, not timings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from bot.engine.fair_turns import Caller, FairLine

CEILING_S = 10.0


class Request:
    """One request in the line: its heard places, whether it runs, and a switch to finish it."""

    def __init__(self, line: FairLine, owner: Hashable, *, slots: int = 1, tokens: int = 0) -> None:
        self.places: list[int] = []
        self.running = asyncio.Event()
        self.finish = asyncio.Event()
        caller = Caller(owner=owner, on_position=self.places.append)
        self.task = asyncio.create_task(self._hold(line, caller, slots, tokens))

    async def _hold(self, line: FairLine, caller: Caller, slots: int, tokens: int) -> None:
        async with line.place(caller, slots=slots, tokens=tokens):
            self.running.set()
            await self.finish.wait()

    async def done(self) -> None:
        self.finish.set()
        await asyncio.wait_for(self.task, CEILING_S)


async def settled() -> None:
    """Let every task that can move do so (admission is a chain of loop callbacks)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_beyond_the_engine_wait_and_hear_their_place_move_up_to_zero() -> None:
    line = FairLine(max_slots=1)
    alice = Request(line, "alice")
    await settled()
    bob, carol = Request(line, "bob"), Request(line, "carol")
    await settled()

    assert alice.running.is_set() and not bob.running.is_set()
    assert bob.places == [1] and carol.places == [2]
    await alice.done()
    await settled()
    assert bob.places == [1, 0] and bob.running.is_set()
    assert carol.places == [2, 1]
    await bob.done()
    await carol.done()
    assert carol.places == [2, 1, 0]
    assert alice.places == [0], "a request that never waited only hears that it runs"


async def test_one_persons_burst_never_fills_the_engine_and_others_are_let_in_first() -> None:
    line = FairLine(max_slots=16)
    burst = [Request(line, "mallory") for _ in range(6)]
    await settled()
    assert sum(r.running.is_set() for r in burst) == 2, "one person holds at most an eighth"

    others = [Request(line, f"person {n}") for n in range(14)]
    await settled()
    assert all(r.running.is_set() for r in others), "free room goes to others at once"
    grace = Request(line, "grace")
    await settled()
    assert grace.places == [1], "next in line, ahead of the burst's waiting four"

    await others[0].done()
    await settled()
    assert grace.running.is_set()
    for request in [*others[1:], grace, *burst]:
        await request.done()
    assert line.running == 0 and line.waiting == 0


async def test_owners_take_turns_one_request_each_per_round() -> None:
    line = FairLine(max_slots=1)
    first = Request(line, "first")
    await settled()
    mallory = [Request(line, "mallory") for _ in range(3)]
    alice = Request(line, "alice")
    await settled()
    started: list[str] = []

    await first.done()
    for _ in range(4):
        await settled()
        [running] = [r for r in [*mallory, alice] if r.running.is_set() and not r.finish.is_set()]
        started.append("alice" if running is alice else "mallory")
        await running.done()

    assert started == ["mallory", "alice", "mallory", "mallory"]


async def test_a_request_withdrawn_while_waiting_leaves_the_line_and_those_behind_move_up() -> None:
    line = FairLine(max_slots=1)
    alice = Request(line, "alice")
    await settled()
    bob, carol = Request(line, "bob"), Request(line, "carol")
    await settled()

    bob.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await bob.task
    await settled()

    assert carol.places == [2, 1]
    assert line.waiting == 1
    await alice.done()
    await carol.done()
    assert line.running == 0


async def test_admitted_requests_never_reserve_more_cache_than_it_holds_but_one_alone_always_runs() -> None:
    line = FairLine(max_slots=8, max_tokens=1000)
    big = Request(line, "alice", tokens=1500)
    await settled()
    assert big.running.is_set(), "alone in an empty engine, whatever its size"
    small = Request(line, "bob", tokens=100)
    await settled()
    assert not small.running.is_set()
    await big.done()
    await settled()
    medium = Request(line, "carol", tokens=900)
    await settled()
    assert small.running.is_set() and medium.running.is_set(), "100 + 900 fit in 1000"
    late = Request(line, "dave", tokens=1)
    await settled()
    assert late.places == [1]
    for request in (small, medium, late):
        await request.done()


async def test_a_request_of_several_sequences_takes_as_many_slots() -> None:
    line = FairLine(max_slots=4)
    alice = Request(line, "alice", slots=3)
    await settled()
    bob = Request(line, "bob", slots=2)
    await settled()
    assert alice.running.is_set() and not bob.running.is_set()
    await alice.done()
    await bob.done()


async def test_without_a_limit_everything_is_admitted_at_once() -> None:
    line = FairLine(max_slots=None)
    requests = [Request(line, "mallory") for _ in range(50)]
    await settled()
    assert all(r.running.is_set() for r in requests)
    for request in requests:
        await request.done()
