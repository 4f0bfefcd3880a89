"""The bot never sends an engine more than it was told to, and says "busy" past its queue."""

from __future__ import annotations

import asyncio

import pytest

from bot.config import EngineSettings
from bot.engine.chat import ChatMessage, ChatPrompt, fit_estimated
from bot.engine.remote import RemoteEngines
from bot.errors import ContextTooLong, PoolBusy


async def test_an_engine_gets_at_most_its_concurrency_and_a_bounded_queue() -> None:
    engines = RemoteEngines(
        {"serve": EngineSettings(base_url="http://127.0.0.1:1", max_concurrency=2, queue_size=1)}
    )
    release = asyncio.Event()
    inside = 0
    most = 0

    async def request() -> None:
        nonlocal inside, most
        async with engines.slot("serve"):
            inside += 1
            most = max(most, inside)
            await release.wait()
            inside -= 1

    running = [asyncio.create_task(request()) for _ in range(3)]
    await asyncio.sleep(0)
    assert engines.waiting("serve") == 1
    with pytest.raises(PoolBusy):
        await request()
    release.set()
    await asyncio.gather(*running)
    assert most == 2


def test_a_conversation_for_a_remote_model_is_trimmed_by_a_generous_estimate() -> None:
    history = tuple(
        ChatMessage(role, "word " * 200) for _ in range(5) for role in ("user", "assistant")
    )
    prompt = ChatPrompt("Be brief.", history, "And now?")

    messages, dropped = fit_estimated(prompt, max_new_tokens=100, limit=1000)

    assert dropped == 4, "one earlier turn (about 680 estimated tokens) still fits"
    assert len(messages) == 4
    assert messages[0] == ChatMessage("system", "Be brief.")
    assert messages[1].role == "user" and messages[-1].content == "And now?"
    with pytest.raises(ContextTooLong):
        fit_estimated(ChatPrompt(None, (), "长" * 2000), max_new_tokens=100, limit=1000)
