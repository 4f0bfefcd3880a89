"""One turn at a time per conversation, in the order they came; other conversations never wait."""

from __future__ import annotations

import asyncio

import pytest

from bot.admission.conversation_turns import ConversationTurns


async def test_turns_of_one_conversation_run_one_after_another_in_the_order_they_came() -> None:
    turns = ConversationTurns()
    order: list[str] = []
    first_inside = asyncio.Event()
    let_first_finish = asyncio.Event()

    async def first() -> None:
        async with turns.turn("alice") as waited:
            assert not waited
            first_inside.set()
            await let_first_finish.wait()
            order.append("first")

    async def later(name: str) -> None:
        async with turns.turn("alice") as waited:
            assert waited
            order.append(name)

    running = asyncio.create_task(first())
    await first_inside.wait()
    second, third = asyncio.create_task(later("second")), asyncio.create_task(later("third"))
    await asyncio.sleep(0)
    assert order == []
    let_first_finish.set()
    await asyncio.gather(running, second, third)

    assert order == ["first", "second", "third"]
    assert not turns._lines, "a conversation nobody waits for is forgotten"


async def test_another_conversation_does_not_wait() -> None:
    turns = ConversationTurns()
    async with turns.turn("alice"):
        async with turns.turn("bob") as waited:
            assert not waited


async def test_a_turn_cancelled_while_it_waits_leaves_the_line_and_the_next_one_goes_on() -> None:
    turns = ConversationTurns()
    told: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn("chat"):
            await release.wait()

    async def waiter(name: str) -> None:
        async def note() -> None:
            told.append(name)

        async with turns.turn("chat", on_wait=note):
            told.append(f"{name} in")

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    doomed, kept = asyncio.create_task(waiter("doomed")), asyncio.create_task(waiter("kept"))
    await asyncio.sleep(0)
    doomed.cancel()
    release.set()
    await asyncio.gather(held, kept)
    with pytest.raises(asyncio.CancelledError):
        await doomed

    assert told == ["doomed", "kept", "kept in"]
    assert not turns._lines


async def test_an_error_inside_a_turn_passes_the_conversation_on() -> None:
    turns = ConversationTurns()
    with pytest.raises(RuntimeError):
        async with turns.turn("chat"):
            raise RuntimeError("the model broke")
    async with turns.turn("chat") as waited:
        assert not waited
