"""A person in a private chat: commands, settings, replies, and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import RunningBot, stand_in_model


async def test_start_greets_by_name_and_registers_the_command_menu(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "/start")
    assert "Hi Alice" in reply
    menu = [command["command"] for command in bot.emu.commands()]
    assert {"sentiment", "generate", "settings", "cancel"} <= set(menu)
    zh_menu = bot.emu.commands(language_code="zh")
    assert any(command["description"] == "情感分析" for command in zh_menu)


async def test_sentiment_answers_with_a_label_and_score_bars(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment This book is awesome.")
    first_line = reply.splitlines()[0]
    assert first_line in ("POSITIVE", "NEGATIVE")
    assert reply.count("%") == 2
    assert "█" in reply or "░" in reply


async def test_replying_to_a_message_uses_that_messages_text(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    original = bot.emu.send_message(alice, chat, "The book is awesome and")
    [reply] = await bot.ask(alice, chat, "/generate", reply_to=original["message_id"])
    assert reply.startswith("The book is awesome and")


async def test_choosing_a_model_then_generating_uses_that_model(
    bot: RunningBot, tiny_models_dir: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    gpt2 = bot.settings.default_models["generate"]
    [reply] = await bot.ask(alice, chat, f"/model generate {gpt2}")
    assert reply == "Your model for generate is now local/gpt2."
    [reply] = await bot.ask(alice, chat, "/set generate max_new_tokens 3")
    assert "max_new_tokens" in reply and "3" in reply
    [reply] = await bot.ask(alice, chat, "/set generate do_sample off")
    [first] = await bot.ask(alice, chat, "/generate Hello there")
    [second] = await bot.ask(alice, chat, "/generate Hello there")
    assert first == second, "greedy decoding with the user's own settings is deterministic"
    assert first.startswith("Hello there")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/sentiment", "Please give me some text"),
        ("/sentiment " + "x" * 2001, "the limit is 2000"),
        ("/model generate", "Usage: /model"),
        ("/model horoscope org/model", "There is no task called “horoscope”"),
        # Allowed or not comes first: a refusal says nothing of what is on the machine.
        ("/model generate ./no/such/model", "“local/model” is not on this bot's list"),
        ("/set temperature hot", "temperature can't be “hot”. Allowed: 0.05 … 2"),
        ("/set max_new_tokens 100000", "Allowed: 1 … 256"),
        ("/set beams 4", "“beams” is not a setting of generate"),
        ("/set sentiment temperature 0.5", "“temperature” is not a setting of sentiment"),
        ("/fill no gap here", "Put <mask>"),
        ("/classify I love it", "Give labels after a “|”"),
        ("/ask what?", "Reply with /ask your question"),
        ("/groupmodel generate x", "works in groups only"),
        ("/lang klingon", "I speak: en, zh, auto"),
        ("/cancel", "nothing of yours running"),
    ],
)
async def test_bad_input_gets_a_one_line_answer(
    bot: RunningBot, command: str, expected: str
) -> None:
    alice = bot.person("Alice")
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), command)
    assert expected in reply
    assert len(reply.splitlines()) == 1


async def test_a_model_of_the_wrong_task_is_refused(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    classifier = bot.settings.default_models["sentiment"]
    [reply] = await bot.ask(alice, bot.emu.private_chat(alice), f"/model generate {classifier}")
    assert "not one for generate" in reply


async def test_every_task_answers_through_the_pool(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    context = bot.emu.send_message(alice, chat, "Paris is the capital of France.")
    replies = {
        "summarize": await bot.ask(
            alice, chat, "/summarize The book is long and the story is good."
        ),
        "translate": await bot.ask(alice, chat, "/translate The book is good."),
        "ner": await bot.ask(alice, chat, "/ner Alice lives in Paris."),
        "fill": await bot.ask(alice, chat, "/fill Paris is the <mask> of France."),
        "classify": await bot.ask(alice, chat, "/classify I love it | happy, sad"),
        "ask": await bot.ask(alice, chat, "/ask What is Paris?", reply_to=context["message_id"]),
    }
    for task, [reply] in replies.items():
        assert reply.strip(), task
        assert "went wrong" not in reply, task
    assert {"happy", "sad"} <= set(replies["classify"][0].split())


async def test_replies_follow_the_users_language_and_lang_overrides_it(bot: RunningBot) -> None:
    li = bot.person("Li", language="zh-hans")
    chat = bot.emu.private_chat(li)
    [reply] = await bot.ask(li, chat, "/sentiment")
    assert "请给我一些文字" in reply
    await bot.ask(li, chat, "/lang en")
    [reply] = await bot.ask(li, chat, "/sentiment")
    assert "Please give me some text" in reply


async def test_a_long_result_is_split_into_valid_messages(bot: RunningBot) -> None:
    """The emulator refuses what Telegram refuses (over 4096 characters, broken HTML)."""
    long_text = "Once upon a time " + "the story went on & on, " * 400

    storyteller = stand_in_model([{"generated_text": long_text}])

    await bot.swap_pool(storyteller)
    alice = bot.person("Alice")
    replies = await bot.ask(
        alice, bot.emu.private_chat(alice), "/generate Once upon a time", replies=3
    )
    assert all(0 < len(reply) <= 4096 for reply in replies)
    assert " ".join(replies).split() == long_text.split()
    assert not [call for call in bot.emu.calls if call.error]
