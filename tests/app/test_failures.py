"""When things around the bot fail, the person gets one clear line and nothing breaks."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from tests.support.harness import POSITIVE, RunningBot, stand_in_model


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"rate_limit_per_minute": 3}


async def test_database_down_answers_with_defaults_and_says_so(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/start")
    bot.break_database()
    [reply] = await bot.ask(alice, chat, "/sentiment I like it")
    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    assert "I can't reach my settings right now, so I used the defaults." in reply
    [reply] = await bot.ask(alice, chat, "/set temperature 0.5")
    assert (
        reply
        == "I can't reach my database right now, so I can't save that. Please try again later."
    )


async def test_a_model_that_fails_to_load_is_named_in_the_reply(bot: RunningBot) -> None:
    def broken(task: str, model_id: str) -> Any:
        raise OSError("weights are corrupt")

    await bot.swap_pool(broken)
    alice = bot.person("Alice")
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment I like it")
    assert reply.startswith("The model “")
    assert "failed to load" in reply
    assert "corrupt" not in reply, "internal errors stay in the log"


async def test_a_full_queue_answers_busy_and_the_queued_request_still_completes(
    bot: RunningBot,
) -> None:
    release = threading.Event()

    slow_classifier = stand_in_model(POSITIVE, release=release)

    await bot.swap_pool(
        slow_classifier, pool_queue_size=1, pool_max_batch_size=1, pool_max_wait_ms=0
    )
    alice, bob, carol = bot.person("Alice"), bot.person("Bob"), bot.person("Carol")
    bot.emu.send_message(alice, bot.emu.private_chat(alice), "/sentiment running")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 1)
    bot.emu.send_message(bob, bot.emu.private_chat(bob), "/sentiment queued")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 2)
    [busy] = await bot.ask(carol, bot.emu.private_chat(carol), "/sentiment refused")
    assert busy == "I'm busy right now. Please try again in a moment."
    release.set()
    done = await bot.emu.wait_for(
        "sendMessage", lambda call: call.params["chat_id"] in (alice.id, bob.id), count=2, since=0
    )
    assert all(call.result["text"].startswith("POSITIVE") for call in done)


async def test_cancel_stops_a_running_request_and_says_so(bot: RunningBot) -> None:
    release = threading.Event()

    slow = stand_in_model(POSITIVE, release=release)

    await bot.swap_pool(slow, pool_max_wait_ms=0)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_message(alice, chat, "/sentiment queued behind the slow one")
    await bot.emu.wait_until(lambda: bot.services.running.count(alice.id) == 1)
    bot.emu.send_message(alice, chat, "/cancel")
    [stopped] = await bot.emu.wait_for(
        "sendMessage", lambda call: call.params["chat_id"] == chat.id
    )
    release.set()
    assert stopped.result["text"] == "Stopped."


async def test_too_many_requests_get_a_slow_down_reply(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    for _ in range(3):
        await bot.ask(alice, chat, "/sentiment fine")
    [reply] = await bot.ask(alice, chat, "/sentiment one too many")
    assert reply.startswith("Slow down a little: try again in ")


async def test_model_lookups_and_settings_buttons_count_against_the_rate_limit(
    bot: RunningBot,
) -> None:
    """Vetting and Hub searches cost as much as a model command; so does a settings button."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/models sentiment")
    await bot.ask(alice, chat, "/model sentiment default")
    await bot.ask(alice, chat, "/settings")
    message = next(c.result for c in reversed(bot.emu.calls) if c.method == "sendMessage")
    bot.emu.press_button(alice, message, f"cfg:{alice.id}:set:generate:temperature:0.3")
    [answer] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
    [limited] = await bot.ask(alice, chat, "/model sentiment default")

    assert answer.params["text"] == "temperature for generate is now 0.3."
    assert limited.startswith("Slow down a little: try again in ")
    bot.emu.press_button(alice, message, f"cfg:{alice.id}:set:generate:temperature:1.0")
    [refused] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
    assert refused.params["text"].startswith("Slow down a little")


async def test_an_unexpected_error_is_logged_and_the_person_gets_no_traceback(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    def exploding(task: str, model_id: str) -> Any:
        def run(inputs: list[str], *, batch_size: int, **params: Any) -> list[Any]:
            raise ZeroDivisionError("secret internals")

        return run

    await bot.swap_pool(exploding)
    alice = bot.person("Alice")
    with caplog.at_level(logging.ERROR):
        [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment boom")
    assert reply == "Something went wrong on my side. Please try again."
    assert any("ZeroDivisionError" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_admins_deny_a_model_and_users_can_no_longer_pick_it(bot: RunningBot) -> None:
    admin, alice = bot.person("Admin"), bot.person("Alice")
    bot.services.settings.admin_ids.append(admin.id)
    gpt2 = bot.settings.default_models["generate"]
    [reply] = await bot.ask(admin, bot.emu.private_chat(admin), f"/deny {gpt2}")
    assert reply == "Denied local/gpt2.", "a folder is named by its name, to admins too"
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), f"/model generate {gpt2}")
    assert "has been blocked by this bot's admins" in reply
