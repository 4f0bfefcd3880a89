"""A busy group: per-user settings, admin defaults, ordering under load, inline mode, buttons."""

from __future__ import annotations

import logging

import pytest

from tests.support.harness import RunningBot, answered_in_order


async def test_commands_addressed_to_the_bot_by_name_work_in_groups(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    [reply] = await bot.ask(alice, group, "/sentiment@hfbot_test_bot Great book")
    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")


async def test_group_admin_sets_a_default_that_members_inherit_but_their_own_wins(
    bot: RunningBot,
) -> None:
    admin, bob, carol = bot.person("Admin"), bot.person("Bob"), bot.person("Carol")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)
    [reply] = await bot.ask(admin, group, "/groupset max_new_tokens 2")
    assert "This group's max_new_tokens for generate is now 2" in reply
    await bot.ask(admin, group, "/groupset do_sample off")
    await bot.ask(carol, group, "/set max_new_tokens 12")

    [bob_reply] = await bot.ask(bob, group, "/generate Once upon")
    [carol_reply] = await bot.ask(carol, group, "/generate Once upon")
    assert len(carol_reply) > len(bob_reply), "Carol's own max_new_tokens beats the group's"
    [bob_view] = await bot.ask(bob, group, "/settings")
    assert "max_new_tokens = 2 · group default" in bob_view
    [carol_view] = await bot.ask(carol, group, "/settings")
    assert "max_new_tokens = 12 · yours" in carol_view
    assert "do_sample = off · group default" in carol_view

    [private] = await bot.ask(bob, bot.emu.private_chat(bob), "/settings")
    assert "max_new_tokens = 40 · bot default" in private, "group defaults stay in the group"


async def test_non_admins_cannot_change_group_defaults(bot: RunningBot) -> None:
    admin, bob = bot.person("Admin"), bot.person("Bob")
    group = bot.emu.create_chat("group", "Readers", creator=admin)
    [reply] = await bot.ask(bob, group, "/groupmodel generate some/model")
    assert reply == "Only this group's admins can change its defaults."
    [reply] = await bot.ask(bob, group, "/groupset temperature 0.5")
    assert reply == "Only this group's admins can change its defaults."


async def test_settings_buttons_change_the_pressers_own_settings_only(bot: RunningBot) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    bot.emu.send_message(alice, group, "/settings")
    [sent] = await bot.emu.wait_for("sendMessage", lambda c: c.params.get("chat_id") == group.id)
    message = sent.result
    assert "temperature = 0.8 · bot default" in message["text"]

    bot.emu.press_button(bob, message, f"cfg:{alice.id}:set:generate:temperature:0.3")
    [answer] = await bot.emu.wait_for("answerCallbackQuery")
    assert answer.params.get("show_alert") in (True, "true")
    assert "belong to someone else" in answer.params["text"]

    bot.emu.press_button(alice, message, f"cfg:{alice.id}:set:generate:temperature:0.3")
    await bot.emu.wait_for("editMessageText")
    [now] = [m for m in bot.emu.sent_messages(group.id) if m["message_id"] == message["message_id"]]
    assert "temperature = 0.3 · yours" in now["text"]
    assert (await bot.services.store.preferences.user_choice(alice.id, "generate")).params == {
        "temperature": 0.3
    }
    assert await bot.services.store.preferences.user_choice(bob.id, "generate") is None


async def test_inline_query_offers_sentiment_and_a_continuation(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    query = bot.emu.inline_query(alice, "What a lovely day")
    await bot.emu.wait_for("answerInlineQuery")
    answer = bot.emu.inline_answer(query)
    assert answer is not None
    titles = [result["title"] for result in answer["results"]]
    assert titles[0].startswith("Sentiment: ")
    assert titles[1] == "Continue the text"
    assert (
        "<b>What a lovely day</b>" in answer["results"][1]["input_message_content"]["message_text"]
    )


async def test_two_hundred_updates_from_fifty_users_are_all_answered_in_order(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    users = [bot.person(f"User{n}") for n in range(50)]
    groups = [bot.emu.create_chat("supergroup", f"Group {n}", creator=users[n]) for n in range(10)]
    asked: dict[int, dict[int, str]] = {}
    with caplog.at_level(logging.ERROR):
        for n in range(200):
            user = users[n % 50]
            chat = groups[n % 10] if n % 2 else bot.emu.private_chat(user)
            question = f"message number {n:03d}"
            message = bot.emu.send_message(user, chat, f"/sentiment {question}")
            asked.setdefault(chat.id, {})[message["message_id"]] = question

        def answered() -> int:
            return sum(len(answered_in_order(bot.emu, c, q)) for c, q in asked.items())

        await bot.emu.wait_until(lambda: answered() == 200, timeout=120)
    for chat_id, questions in asked.items():
        in_order = answered_in_order(bot.emu, chat_id, questions)
        assert in_order == list(questions.values()), f"chat {chat_id} answered out of order"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    batches = bot.services.pool.metrics.snapshot()
    assert batches is not None
