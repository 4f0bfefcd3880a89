"""/generate on continuous batching: each user's own settings, streamed within Telegram's limits, stoppable."""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from telegram.error import BadRequest

from bot.delivery.pacing import GROUP_INTERVAL_S, PRIVATE_INTERVAL_S
from bot.engine.generation_path import GenerationPath
from bot.offline.emulator.flood import FloodLimits
from tests.support.harness import RunningBot, bot_settings, running_bot

STEP_DELAY_S = 0.02


@pytest.fixture(autouse=True)
def flood_control(bot: RunningBot) -> None:
    """Telegram's flood limits are enforced: a stream that edits too fast would get 429s."""
    bot.emu.flood.enabled = True


async def slow_down_generation(bot: RunningBot) -> None:
    """Make each decoding step of the tiny model slow and never final, so a stream lasts seconds."""
    model_id = bot.settings.default_models["generate"]
    async with bot.services.pool.lease("text-generation", model_id) as runner:
        eos = runner.tokenizer.eos_token_id

        def slow_and_endless(module: object, args: object, output: Any) -> None:
            time.sleep(STEP_DELAY_S)
            output.logits[..., eos] = float("-inf")

        runner.model.register_forward_hook(slow_and_endless)


def generation_path(bot: RunningBot) -> GenerationPath:
    engine = bot.services.pool.engine("text-generation", bot.settings.default_models["generate"])
    assert isinstance(engine, GenerationPath)
    return engine


def flooded_edits(bot: RunningBot) -> list[str]:
    """Edits Telegram would have refused with a RetryAfter (429)."""
    return [
        c.error
        for c in bot.emu.calls
        if c.method == "editMessageText" and c.error and "Too Many" in c.error
    ]


def edit_times(bot: RunningBot, chat_id: int) -> list[float]:
    return [
        c.at
        for c in bot.emu.calls
        if c.method == "editMessageText" and c.params.get("chat_id") == chat_id
    ]


async def test_users_with_different_settings_share_the_engine_and_get_their_own_lengths(
    bot: RunningBot,
) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Writers", creator=alice)
    await bot.ask(alice, group, "/set generate max_new_tokens 3")
    await bot.ask(bob, group, "/set generate max_new_tokens 30")
    for person in (alice, bob):
        await bot.ask(person, group, "/set generate do_sample off")
    short, long = await asyncio.gather(
        bot.ask(alice, group, "/generate Once upon a time"),
        bot.ask(bob, group, "/generate Once upon a time"),
    )
    assert short[0].startswith("Once upon a time") and long[0].startswith("Once upon a time")
    assert len(long[0]) > len(short[0])
    assert generation_path(bot).served_by_engine == 2
    assert generation_path(bot).served_by_fallback == 0


async def test_a_stream_is_edited_at_most_once_a_second_and_ends_with_the_full_text(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set stream edit")
    await bot.ask(alice, chat, "/set generate max_new_tokens 200")
    await bot.ask(alice, chat, "/generate warm up")
    await slow_down_generation(bot)
    [final] = await bot.ask(alice, chat, "/generate The robot wanted to")
    times = edit_times(bot, chat.id)
    assert len(times) >= 2, "the placeholder was edited while generating, then finally"
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert min(gaps) >= PRIVATE_INTERVAL_S * 0.95
    assert final.startswith("The robot wanted to")
    assert "▍" not in final
    assert flooded_edits(bot) == [], "never a RetryAfter"


async def test_the_stop_button_keeps_the_partial_text_marked_as_stopped(bot: RunningBot) -> None:
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    group = bot.emu.create_chat("supergroup", "Writers", creator=alice)
    await bot.ask(alice, group, "/set generate max_new_tokens 200")
    await bot.ask(alice, group, "/generate warm up")
    await slow_down_generation(bot)
    bot.emu.send_message(alice, group, "/generate Every morning the robot")
    [first_edit] = await bot.emu.wait_for(
        "editMessageText", lambda c: c.params.get("chat_id") == group.id, timeout=60
    )
    streaming = first_edit.result
    bot.emu.press_button(mallory, streaming, f"stop:{alice.id}")
    [refusal] = await bot.emu.wait_for("answerCallbackQuery")
    assert refusal.params["text"] == "Only the person who asked can stop this."
    bot.emu.press_button(alice, streaming, f"stop:{alice.id}")
    [stopped] = await bot.emu.wait_for(
        "editMessageText",
        lambda c: isinstance(c.result, dict) and "(stopped)" in c.result["text"],
        timeout=30,
    )
    assert stopped.result["text"].startswith("Every morning the robot")
    assert "reply_markup" not in stopped.result or not stopped.result["reply_markup"]
    assert generation_path(bot).queue_depth == 0, "the stopped request left the engine"


async def test_in_a_private_chat_the_answer_streams_as_a_message_draft(bot: RunningBot) -> None:
    """Telegram's native drafts animate the answer; the finished text is then one message."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set generate max_new_tokens 200")
    await bot.ask(alice, chat, "/generate warm up")
    await slow_down_generation(bot)
    since = len(bot.emu.calls)
    [final] = await bot.ask(alice, chat, "/generate The robot wanted to")

    calls = [c for c in bot.emu.calls[since:] if c.params.get("chat_id") == chat.id]
    drafts = [c for c in calls if c.method == "sendMessageDraft"]
    assert len(drafts) >= 3, "Thinking…, then the draft grew while generating"
    thinking, *texts = [c.params.get("text", "") for c in drafts]
    assert thinking == "", "an empty draft shows Telegram's Thinking… until the first words"
    assert all("The robot wanted to" in text for text in texts)
    assert all(c.params["can_stop"] is True and c.params["keep_on_stop"] is True for c in drafts)
    assert len({c.params["draft_id"] for c in drafts}) == 1
    assert not [c for c in calls if c.method == "editMessageText"]
    assert final.startswith("The robot wanted to") and "▍" not in final
    assert bot.emu.flood.served == 0


async def test_cancel_stops_a_draft_stream_and_keeps_what_was_written(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set generate max_new_tokens 200")
    await bot.ask(alice, chat, "/generate warm up")
    await slow_down_generation(bot)
    bot.emu.send_message(alice, chat, "/generate The quick brown fox")
    await bot.emu.wait_for(
        "sendMessageDraft", lambda c: c.params.get("chat_id") == chat.id, timeout=60
    )
    bot.emu.send_message(alice, chat, "/cancel")
    [stopped] = await bot.emu.wait_for(
        "sendMessage",
        lambda c: isinstance(c.result, dict) and "(stopped)" in c.result["text"],
        timeout=30,
    )
    assert stopped.result["text"].startswith("The quick brown fox")
    assert generation_path(bot).queue_depth == 0


async def test_telegrams_own_stop_on_a_draft_stops_the_generation_and_keeps_what_was_written(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set generate max_new_tokens 200")
    await bot.ask(alice, chat, "/generate warm up")
    await slow_down_generation(bot)
    bot.emu.send_message(alice, chat, "/generate The quick brown fox")
    [written] = await bot.emu.wait_for(
        "sendMessageDraft", lambda c: "The quick brown fox" in c.params.get("text", ""), timeout=60
    )
    bot.emu.stop_generation(alice, written.params["draft_id"])
    [stopped] = await bot.emu.wait_for(
        "sendMessage",
        lambda c: isinstance(c.result, dict) and "(stopped)" in c.result["text"],
        timeout=30,
    )
    await bot.settle()

    assert stopped.result["text"].startswith("The quick brown fox")
    assert generation_path(bot).queue_depth == 0, "the stopped request left the engine"
    assert bot.services.running.count(alice.id) == 0


async def test_a_stop_on_a_draft_whose_answer_was_sent_stops_nothing(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/generate Once upon a time")
    [draft_id] = bot.emu.drafts(chat.id)
    bot.emu.stop_generation(alice, draft_id)
    await bot.settle()
    [again] = await bot.ask(alice, chat, "/generate Twice upon a time")
    assert again.startswith("Twice upon a time") and "(stopped)" not in again


async def test_drafts_are_refused_outside_private_chats_and_groups_stream_by_edits(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    group = bot.emu.create_chat("supergroup", "Writers", creator=alice)
    with pytest.raises(BadRequest, match="private chats only"):
        await bot.app.bot.send_message_draft(group.id, 7, "hello")
    with pytest.raises(BadRequest, match="non-zero"):
        await bot.app.bot.send_message_draft(bot.emu.private_chat(alice).id, 0, "hello")
    await bot.ask(alice, group, "/set stream draft")
    await bot.ask(alice, group, "/generate Once")
    assert not [c for c in bot.emu.calls if c.method == "sendMessageDraft" and not c.error]


async def test_a_bot_api_server_without_drafts_streams_by_edits_with_a_stop_button(
    tmp_path: Path, tiny_models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A self-hosted Bot API server older than drafts: refused once, logged once, then edits."""
    settings = bot_settings(tmp_path, tiny_models_dir)
    async with running_bot(settings, refuse_drafts=True) as old:
        alice = old.person("Alice")
        chat = old.emu.private_chat(alice)
        with caplog.at_level(logging.WARNING, logger="bot.delivery.draft_stop"):
            [first] = await old.ask(alice, chat, "/generate Once upon a time")
            [second] = await old.ask(alice, chat, "/generate Twice upon a time")

        drafts = [c for c in old.emu.calls if c.method == "sendMessageDraft"]
        placeholders = [
            c
            for c in old.emu.calls
            if c.method == "sendMessage" and "stop:" in str(c.params.get("reply_markup"))
        ]
    assert first.startswith("Once upon a time") and second.startswith("Twice upon a time")
    assert len(drafts) == 1 and drafts[0].error == "Not Found: method not found"
    assert len(placeholders) == 2, "each answer streamed in a message with a Stop button"
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


async def test_two_users_streaming_in_one_group_share_its_edit_pace(bot: RunningBot) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Writers", creator=alice)
    bot.emu.flood.limits = FloodLimits()
    for person in (alice, bob):
        await bot.ask(person, group, "/set generate max_new_tokens 200")
    await bot.ask(alice, group, "/generate warm up")
    await slow_down_generation(bot)
    started = len(edit_times(bot, group.id))
    first, second = await asyncio.gather(
        bot.ask(alice, group, "/generate Alice says"), bot.ask(bob, group, "/generate Bob says")
    )
    assert first[0].startswith("Alice says") and second[0].startswith("Bob says")
    times = edit_times(bot, group.id)[started:]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    assert gaps and min(gaps) >= GROUP_INTERVAL_S * 0.95
    assert flooded_edits(bot) == []


async def test_stream_off_replies_once_with_the_whole_text(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set stream off")
    [reply] = await bot.ask(alice, chat, "/generate Once upon")
    assert reply.startswith("Once upon")
    assert edit_times(bot, chat.id) == []


async def test_a_parameter_the_engine_cannot_serve_falls_back_to_micro_batching(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set generate repetition_penalty 1.3")
    [reply] = await bot.ask(alice, chat, "/generate Once upon")
    assert reply.startswith("Once upon")
    assert generation_path(bot).served_by_fallback == 1
    assert generation_path(bot).served_by_engine == 0


def drafts_in(bot: RunningBot, chat_id: int) -> list[str]:
    """What the drafts said, in order; the empty one that shows "Thinking…" left out."""
    return [
        c.params["text"]
        for c in bot.emu.calls
        if c.method == "sendMessageDraft"
        and c.params.get("chat_id") == chat_id
        and not c.error
        and c.params.get("text")
    ]


async def test_a_generate_waiting_for_the_engine_shows_its_place_in_line_where_the_words_will_come(
    bot: RunningBot,
) -> None:
    bot.services.pool.settings.generation_max_running = 1
    bot.services.settings.queue_status_after_s = 0.2
    alice, bob, carol = bot.person("Alice"), bot.person("Bob"), bot.person("Carol")
    chats = {person.first_name: bot.emu.private_chat(person) for person in (alice, bob, carol)}
    for person in (alice, bob):
        await bot.ask(person, chats[person.first_name], "/set generate max_new_tokens 200")
    await bot.ask(carol, chats["Carol"], "/set generate max_new_tokens 5")
    await bot.ask(alice, chats["Alice"], "/generate warm up")
    await slow_down_generation(bot)
    engine = generation_path(bot)
    bot.emu.send_message(alice, chats["Alice"], "/generate Alice writes")
    await bot.emu.wait_until(lambda: bool(drafts_in(bot, chats["Alice"].id)), timeout=60)

    bot.emu.send_message(bob, chats["Bob"], "/generate Bob writes")
    await bot.emu.wait_until(lambda: engine.queue_depth == 2)
    bot.emu.send_message(carol, chats["Carol"], "/generate Carol writes")
    await bot.emu.wait_until(
        lambda: (
            drafts_in(bot, chats["Bob"].id) == ["⏳ #1 in line…"]
            and drafts_in(bot, chats["Carol"].id) == ["⏳ #2 in line…"]
        )
    )
    bot.emu.send_message(alice, chats["Alice"], "/cancel")  # Bob's turn: Carol moves up
    await bot.emu.wait_until(lambda: "⏳ #1 in line…" in drafts_in(bot, chats["Carol"].id))
    bot.emu.send_message(bob, chats["Bob"], "/cancel")  # Carol's turn
    await bot.settle()

    carols = drafts_in(bot, chats["Carol"].id)
    assert carols[:2] == ["⏳ #2 in line…", "⏳ #1 in line…"]
    assert all("Carol writes" in text for text in carols[2:]), "then the words, in the same draft"
    [answer] = bot.emu.sent_messages(chats["Carol"].id)[-1:]
    assert answer["text"].startswith("Carol writes"), "the answer itself is one message"
    assert "⏳" not in answer["text"]
    assert bot.emu.flood.served == 0
