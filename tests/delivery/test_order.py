"""A chat's reply order and settling: later updates wait for every earlier one, in order."""

from __future__ import annotations

import asyncio

from bot.delivery.order import Ticket, _ChatQueue


def tickets(count: int) -> list[Ticket]:
    queue = _ChatQueue(next_ticket=count)
    return [Ticket(queue, number) for number in range(count)]


async def test_an_update_that_lets_go_early_does_not_let_later_ones_past_an_earlier_one() -> None:
    first, second, third = tickets(3)
    await second.release()
    waiting = asyncio.create_task(third.wait_turn())
    await asyncio.sleep(0)
    assert not waiting.done(), "the first has not replied yet"
    await first.release()
    await asyncio.wait_for(waiting, 1)


async def test_a_turn_waits_until_every_earlier_update_of_the_chat_has_settled() -> None:
    first, second, third = tickets(3)
    waiting = asyncio.create_task(third.wait_earlier_settled())
    await second.settle()
    await asyncio.sleep(0)
    assert not waiting.done()
    await first.release()
    await asyncio.wait_for(waiting, 1)
    assert first.queue.turn == 1, "settling is not replying: the second still holds its place"
