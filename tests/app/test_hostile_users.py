"""What a hostile user (or a careless admin) can try in a public group, and what they get.

Every limit is enforced where the work happens and answered with one clear
line; nothing another user saved changes, and nothing reaches the log as an error.
"""

from __future__ import annotations

import logging
import threading

import pytest

from bot.offline.emulator.world import JsonDict
from tests.support.crash import replies_to
from tests.support.harness import POSITIVE, RunningBot, stand_in_model

BOT = "hfbot_test_bot"


def sent_to(bot: RunningBot, chat_id: int, since: int) -> list[str]:
    return [
        call.result["text"]
        for call in bot.emu.calls[since:]
        if call.method == "sendMessage" and call.params.get("chat_id") == chat_id and call.result
    ]


async def test_an_unknown_command_gets_a_hint_in_private_and_silence_in_groups(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    [hint] = await bot.ask(alice, bot.emu.private_chat(alice), "/frobnicate now")
    assert hint == "I don't know /frobnicate. /help lists what I can do."

    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    [named] = await bot.ask(alice, group, f"/frobnicate@{BOT} now")
    assert named == "I don't know /frobnicate. /help lists what I can do."
    since = len(bot.emu.calls)
    bot.emu.send_message(alice, group, "/frobnicate")
    bot.emu.send_message(alice, group, "/sentiment@someotherbot hello")
    await bot.settle()
    assert sent_to(bot, group.id, since) == []


@pytest.mark.parametrize("data", ["cfg:oops", "cfg:1:set", "cfg:x:view:generate", "stop:x", "?"])
async def test_forged_button_data_gets_a_short_answer_and_nothing_else(
    bot: RunningBot, caplog: pytest.LogCaptureFixture, data: str
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_message(alice, chat, "/settings")
    [menu] = await bot.emu.wait_for("sendMessage")
    since = len(bot.emu.calls)

    with caplog.at_level(logging.WARNING):
        bot.emu.press_button(alice, menu.result, data, forged=True)
        [answer] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
        await bot.settle()

    assert answer.params["text"] == "This button no longer works."
    assert sent_to(bot, chat.id, since) == []
    assert not [call for call in bot.emu.calls[since:] if call.method == "editMessageText"]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_anonymous_admins_of_different_groups_do_not_share_settings(
    bot: RunningBot,
) -> None:
    """Telegram sends every anonymous admin's message from one account, GroupAnonymousBot."""
    alice, bob = bot.person("Alice"), bot.person("Bob")
    readers = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    writers = bot.emu.create_chat("supergroup", "Writers", creator=bob)

    [saved] = await bot.ask(alice, readers, "/set temperature 0.3", as_chat=readers)
    [elsewhere] = await bot.ask(bob, writers, "/settings", as_chat=writers)
    [here] = await bot.ask(alice, readers, "/settings", as_chat=readers)

    assert saved == "temperature for generate is now 0.3."
    assert "temperature = 0.8 · bot default" in elsewhere
    assert "temperature = 0.3 · yours" in here
    [group_default] = await bot.ask(alice, readers, "/groupset temperature 0.5", as_chat=readers)
    assert group_default == "This group's temperature for generate is now 0.5."


async def test_someone_posting_as_a_channel_is_no_admin_of_the_group(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    channel = bot.emu.create_chat("channel", "News", creator=alice)
    [refused] = await bot.ask(alice, group, "/groupset temperature 0.5", as_chat=channel)
    assert refused == "Only this group's admins can change its defaults."


async def test_one_user_cannot_have_more_than_three_requests_running(bot: RunningBot) -> None:
    release = threading.Event()

    slow = stand_in_model(POSITIVE, release=release)

    await bot.swap_pool(slow, pool_max_wait_ms=0, pool_max_batch_size=1)
    mallory, alice = bot.person("Mallory"), bot.person("Alice")
    for index in range(3):
        group = bot.emu.create_chat("supergroup", f"Group {index}", creator=mallory)
        bot.emu.send_message(mallory, group, f"/sentiment flood {index}")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 3)

    [refused] = await bot.ask(mallory, bot.emu.private_chat(mallory), "/sentiment one more")
    assert refused == (
        "You already have 3 requests running. Wait for one to finish, or /cancel them."
    )
    bot.emu.send_message(alice, bot.emu.private_chat(alice), "/sentiment my turn")
    await bot.emu.wait_until(lambda: bot.services.pool.metrics.requests == 4)
    release.set()
    await bot.settle()


async def test_zero_shot_labels_are_bounded_and_duplicates_removed(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    many = ", ".join(f"label{index}" for index in range(11))
    [too_many] = await bot.ask(alice, chat, f"/classify I love it | {many}")
    [too_long] = await bot.ask(alice, chat, f"/classify I love it | happy, {'x' * 61}")
    [deduplicated] = await bot.ask(alice, chat, "/classify I love it | happy, HAPPY, happy , sad")

    assert too_many == "That is 11 labels; I take at most 10."
    assert too_long == "A label may be at most 60 characters long (one has 61)."
    labels = [line.split()[0] for line in deduplicated.splitlines()[1:]]
    assert sorted(labels) == ["happy", "sad"]


async def test_a_request_that_fans_out_into_too_much_work_is_refused_before_it_runs(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    text = "word " * 400
    [labels] = await bot.ask(alice, chat, f"/classify {text} | a, b, c, d, e")
    await bot.ask(alice, chat, "/set generate num_return_sequences 3")
    await bot.ask(alice, chat, "/set generate max_new_tokens 256")
    [tokens] = await bot.ask(alice, chat, "/generate Once upon a time")

    assert labels.startswith("5 labels × 1999 characters is more work than one request")
    assert tokens == (
        "3 × 256 tokens is more than one request may generate (at most 512). "
        "Lower num_return_sequences or max_new_tokens with /set."
    )
    assert bot.services.pool.metrics.requests == 0


async def test_a_very_long_result_is_cut_to_a_few_messages_and_sent_whole_as_a_file(
    bot: RunningBot,
) -> None:
    long_text = "Once upon a time " + "the story went on & on, " * 1200

    storyteller = stand_in_model([{"generated_text": long_text}])

    await bot.swap_pool(storyteller)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set stream off")
    since = len(bot.emu.calls)
    bot.emu.send_message(alice, chat, "/generate Once upon a time")
    [document] = await bot.emu.wait_for("sendDocument", timeout=60)
    await bot.settle()

    messages = sent_to(bot, chat.id, since)
    assert len(messages) == 2, "two messages of text, then the file: three in all"
    assert document.params["caption"] == (
        "<i>The answer is longer than a few messages: here it is whole.</i>"
    )
    assert document.params["document"].data.decode().split() == long_text.split()


async def test_a_two_thousand_character_chinese_text_gets_an_answer_not_a_traceback(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    text = ("这是一个很长的中文句子，讲的是一本书。" * 110)[:2000]
    with caplog.at_level(logging.WARNING):
        [sentiment] = await bot.ask(alice, chat, f"/sentiment {text}")
        [filled] = await bot.ask(alice, chat, f"/fill {text[:1990]}[MASK]")
    assert sentiment.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    assert filled
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


# What Python's own readers take but a number people type must not be: '²' passes isdigit()
# and fails int(); the rest pass int() or float() without being ASCII digits, or are too big.
NOT_NUMBERS = ["²", "٣", "１２", "𝟙", "Ⅻ", "½", "1_0", "0x10", "1e3", "+5", "-0", "0"]
NOT_NUMBERS += ["9" * 40, "-" + "9" * 30, "٠.٥", "0.５"]


async def test_numbers_are_ascii_digits_within_bounds_at_every_way_in(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Each number is tried by an admin of their own, in their own chats, all at once (Telegram
    paces a bot to one message a second per chat, twenty a minute per group)."""
    commands = {
        "/groupquota {}": "Usage: /groupquota",
        "/invite {}": "Usage: /invite",
        "/invite 1 {}d": "Usage: /invite",
        "/grant {}": "Usage: /grant",
        "/revoke {}": "Usage: /revoke",
        "/set temperature {}": "temperature can't be",
    }
    admins = [bot.person(f"Admin {index}") for index in range(len(NOT_NUMBERS))]
    for admin in admins:
        bot.services.settings.admin_ids.append(admin.id)
        bot.emu.send_message(admin, bot.emu.private_chat(admin), "/help")
    await bot.settle()
    asked: list[tuple[str, str, JsonDict]] = []
    pressed: list[tuple[str, JsonDict]] = []
    for index, (admin, number) in enumerate(zip(admins, NOT_NUMBERS, strict=True)):
        chat = bot.emu.private_chat(admin)
        group = bot.emu.create_chat("supergroup", f"Readers {index}", creator=admin)
        menu = bot.emu.last_reply(chat.id)
        assert menu is not None
        for form, expected in commands.items():
            where = group if form.startswith("/group") else chat
            text = form.format(number)
            asked.append((text, expected, bot.emu.send_message(admin, where, text)))
        for data in (f"stop:{number}", f"cfg:{number}:view:generate"):
            pressed.append((data, bot.emu.press_button(admin, menu, data, forged=True)))
    with caplog.at_level(logging.WARNING):
        await bot.settle()

    for text, expected, message in asked:
        [reply] = replies_to(bot.emu, message)
        assert reply["text"].startswith(expected), (text, reply["text"])
    answers = {
        call.params["callback_query_id"]: call.params.get("text")
        for call in bot.emu.calls
        if call.method == "answerCallbackQuery"
    }
    for data, query in pressed:
        assert answers.get(query["id"]) == "This button no longer works.", data
    store = bot.services.store
    assert await store.access.restricted() is False, "no grant, revocation or invite was made"
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_in_a_channel_settings_buttons_act_for_whoever_pressed_them(bot: RunningBot) -> None:
    """The bot's own messages in a channel name the channel as their sender: pressing a button
    under one must not make the presser the channel."""
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    channel = bot.emu.create_chat("channel", "News", creator=alice)
    bot.emu.channel_post(channel, "/settings")
    [menu] = await bot.emu.wait_for("sendMessage", timeout=30)
    preset = f"cfg:{channel.id}:set:generate:temperature:0.3"
    bot.services.limiter.per_minute = 2
    for _ in range(3):
        bot.emu.press_button(mallory, menu.result, preset)
    answers = await bot.emu.wait_for("answerCallbackQuery", count=3, timeout=30)
    await bot.settle()

    assert {answer.params["text"] for answer in answers} == {
        "These buttons belong to someone else: send /settings for yours."
    }
    assert await bot.services.store.preferences.user_choice(channel.id, "generate") is None
    since = len(bot.emu.calls)
    bot.emu.channel_post(channel, "/sentiment Lovely news")
    [reply] = await bot.emu.wait_for("sendMessage", since=since, timeout=30)
    assert reply.result["text"].splitlines()[0] in ("POSITIVE", "NEGATIVE"), (
        "the presses did not use up the channel's rate limit"
    )


async def test_in_a_channel_only_the_channel_stops_its_stream(bot: RunningBot) -> None:
    release = threading.Event()
    await bot.swap_pool(stand_in_model([{"generated_text": "Once upon a time"}], release=release))
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    channel = bot.emu.create_chat("channel", "News", creator=alice)
    bot.emu.channel_post(channel, "/generate Once upon")
    [placeholder] = await bot.emu.wait_for("sendMessage", timeout=30)
    await bot.emu.wait_until(lambda: bot.services.running.count(channel.id) == 1)

    bot.emu.press_button(mallory, placeholder.result, f"stop:{channel.id}")
    [answer] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
    assert answer.params["text"] == "Only the person who asked can stop this."
    assert bot.services.running.count(channel.id) == 1, "still running"
    release.set()
    await bot.settle()
    [shown] = bot.emu.sent_messages(channel.id)
    assert "stopped" not in shown["text"].lower()
