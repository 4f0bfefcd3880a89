"""Telegram's budget goes to answers first: the outbound limiter on its own, with small windows."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

import pytest
from telegram.error import RetryAfter

from bot.delivery.outbound import (
    ARRIVAL_MARGIN_S,
    Budget,
    Priority,
    PriorityRateLimiter,
    Window,
)

PRIVATE, OTHER_PRIVATE, GROUP = 10, 11, -20


class Calls:
    """Stands in for the HTTP call: records what went out, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.fail_with: list[Exception] = []

    async def __call__(self, name: str) -> bool:
        if self.fail_with:
            raise self.fail_with.pop(0)
        self.sent.append(name)
        return True


ONE_IN_A_MOMENT = Window(1, 0.3)
PLENTY = Window(30, 1.0)


def limiter(per_chat: Window = ONE_IN_A_MOMENT, overall: Window = PLENTY) -> PriorityRateLimiter:
    return PriorityRateLimiter(Budget(overall=overall, per_chat=per_chat, group=Window(3, 5.0)))


async def send(
    limits: PriorityRateLimiter,
    calls: Calls,
    name: str,
    chat_id: int,
    priority: Priority | None = None,
    endpoint: str = "sendMessage",
) -> Any:
    return await limits.process_request(
        calls, (name,), {}, endpoint, {"chat_id": chat_id}, priority
    )


async def until_queued(limits: PriorityRateLimiter, count: int) -> None:
    """One turn of the event loop runs a new call up to its wait for a slot."""
    await asyncio.sleep(0)
    assert limits.queued() == count


async def test_a_waiting_answer_goes_before_a_streaming_edit_that_waited_longer() -> None:
    limits, calls = limiter(), Calls()
    await send(limits, calls, "first answer", PRIVATE)
    edit = asyncio.create_task(send(limits, calls, "edit", PRIVATE, Priority.STREAM))
    await until_queued(limits, 1)
    answer = asyncio.create_task(send(limits, calls, "second answer", PRIVATE))
    await asyncio.gather(edit, answer)
    assert calls.sent == ["first answer", "second answer", "edit"]
    await limits.shutdown()


async def test_a_full_chat_does_not_hold_back_other_chats() -> None:
    limits, calls = limiter(per_chat=Window(1, 5.0)), Calls()
    await send(limits, calls, "a1", PRIVATE)
    later = asyncio.create_task(send(limits, calls, "a2", PRIVATE))
    await until_queued(limits, 1)
    async with asyncio.timeout(1.0):
        await send(limits, calls, "b1", OTHER_PRIVATE)
    assert calls.sent == ["a1", "b1"]
    later.cancel()
    with pytest.raises(asyncio.CancelledError):
        await later
    assert limits.queued() == 0, "a cancelled call leaves the line"
    await limits.shutdown()


async def test_typing_is_dropped_not_queued_when_the_budget_is_spent() -> None:
    limits, calls = limiter(overall=Window(1, 5.0)), Calls()
    await send(limits, calls, "answer", OTHER_PRIVATE)
    assert await send(limits, calls, "typing", PRIVATE, endpoint="sendChatAction") is True
    assert calls.sent == ["answer"]
    assert limits.dropped_actions == 1


async def test_typing_is_never_sent_while_an_answer_for_that_chat_waits() -> None:
    limits, calls = limiter(overall=Window(1, 0.3)), Calls()
    await send(limits, calls, "elsewhere", OTHER_PRIVATE)
    answer = asyncio.create_task(send(limits, calls, "answer", PRIVATE))
    await until_queued(limits, 1)
    await send(limits, calls, "typing", PRIVATE, endpoint="sendChatAction")
    await answer
    assert calls.sent == ["elsewhere", "answer"]
    assert limits.dropped_actions == 1
    await limits.shutdown()


async def test_typing_and_drafts_do_not_spend_a_chats_message_budget() -> None:
    limits, calls = limiter(per_chat=Window(1, 5.0)), Calls()
    await send(limits, calls, "typing", GROUP, endpoint="sendChatAction")
    await send(limits, calls, "draft", PRIVATE, Priority.STREAM, endpoint="sendMessageDraft")
    async with asyncio.timeout(1.0):
        await send(limits, calls, "group answer", GROUP)
        await send(limits, calls, "private answer", PRIVATE)
    assert calls.sent == ["typing", "draft", "group answer", "private answer"]


async def test_a_group_gets_its_per_minute_budget_and_no_more() -> None:
    limits, calls = limiter(per_chat=Window(5, 0.1)), Calls()
    for number in range(3):
        await send(limits, calls, f"answer {number}", GROUP)
    fourth = asyncio.create_task(send(limits, calls, "answer 3", GROUP))
    await until_queued(limits, 1)
    assert not fourth.done() and limits.queued(GROUP) == 1
    fourth.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fourth
    await limits.shutdown()


async def test_a_429_pauses_the_chat_and_the_answer_is_sent_after_it() -> None:
    limits, calls = limiter(per_chat=Window(5, 0.1)), Calls()
    calls.fail_with.append(RetryAfter(dt.timedelta(seconds=0.2)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await send(limits, calls, "answer", PRIVATE)
    assert calls.sent == ["answer"]
    assert loop.time() - started >= 0.2
    await limits.shutdown()


async def test_spare_budget_shrinks_with_each_message_and_is_nil_while_an_answer_waits() -> None:
    limits, calls = limiter(per_chat=Window(1, 0.3)), Calls()
    assert limits.spare(GROUP) == 1.0
    await send(limits, calls, "answer 0", GROUP)
    assert limits.spare(GROUP) == pytest.approx(2 / 3), "one of the group's three a minute"
    waiting = asyncio.create_task(send(limits, calls, "answer 1", GROUP))
    await until_queued(limits, 1)
    assert limits.spare(GROUP) == 0.0
    await waiting
    await limits.shutdown()


async def test_a_call_holds_its_slot_while_in_flight() -> None:
    """A call may arrive as late as its answer: until the answer is back, its slot is taken."""
    limits, calls = limiter(per_chat=Window(1, 0.2)), Calls()
    release = asyncio.Event()

    async def slow(name: str) -> bool:
        await release.wait()
        return True

    first = asyncio.create_task(
        limits.process_request(slow, ("first",), {}, "sendMessage", {"chat_id": PRIVATE}, None)
    )
    second = asyncio.create_task(send(limits, calls, "second", PRIVATE))
    await until_queued(limits, 1)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.4):
            await asyncio.shield(second)
    assert calls.sent == []
    release.set()
    await asyncio.gather(first, second)
    assert calls.sent == ["second"]
    await limits.shutdown()


class Network:
    """Stands in for the way to Telegram: each call arrives `leg_s` after it leaves and its
    answer comes back `leg_s` later; `arrivals` is when each call arrived, as Telegram counts."""

    def __init__(self, leg_s: float) -> None:
        self.leg_s = leg_s
        self.arrivals: list[float] = []

    async def __call__(self, name: str) -> bool:
        await asyncio.sleep(self.leg_s)
        self.arrivals.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.leg_s)
        return True


@pytest.mark.looptime
@pytest.mark.parametrize(("period", "leg"), [(0.5, 0.1), (0.3, 0.2)])
async def test_the_round_trip_does_not_hold_a_slot_beyond_its_period(
    period: float, leg: float
) -> None:
    """Calls into one chat arrive a period apart (plus the margin), not a period plus the
    round trip apart: Telegram counts arrivals, and the shortest round trip of a lone call
    tells how long before its answer a call arrived. Until one came back (the first call
    opens a connection, so it does not count), a call counts from its answer. A round
    trip longer than the period holds the slot while in flight. Run on the loop's own
    fake clock: what is asserted is the limiter's arithmetic, not how busy the machine is."""
    network = Network(leg_s=leg)
    limits = PriorityRateLimiter(
        Budget(overall=PLENTY, per_chat=Window(1, period)),
        clock=asyncio.get_running_loop().time,
    )
    await asyncio.gather(
        *(
            limits.process_request(network, (n,), {}, "sendMessage", {"chat_id": PRIVATE}, None)
            for n in range(4)
        )
    )
    gaps = [b - a for a, b in itertools.pairwise(network.arrivals)]
    round_trip = 2 * leg
    learned = max(period + ARRIVAL_MARGIN_S, round_trip)
    assert gaps == pytest.approx([period + round_trip, learned, learned], abs=1e-3)
    await limits.shutdown()


async def test_a_call_cancelled_as_its_turn_comes_gives_its_slot_back() -> None:
    limits, calls = limiter(per_chat=Window(1, 0.1)), Calls()
    await send(limits, calls, "first", PRIVATE)
    edit = asyncio.create_task(send(limits, calls, "edit", PRIVATE, Priority.STREAM))
    await until_queued(limits, 1)
    grant = limits._record

    def grant_then_cancel(chat_id: int | None) -> None:
        """The caller is cancelled after its slot is granted, before it resumes."""
        grant(chat_id)
        asyncio.get_running_loop().call_soon(edit.cancel)

    limits._record = grant_then_cancel  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await edit
    async with asyncio.timeout(1.0):
        await send(limits, calls, "answer", PRIVATE)
    assert calls.sent == ["first", "answer"]
    await limits.shutdown()
