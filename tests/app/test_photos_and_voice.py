"""Photos and voice notes end to end: the real bot downloads them through the emulator's Bot API.

Tiny random models (ViT, CLIP, a ViT-GPT-2 captioner, wav2vec2 CTC) answer,
so tests check the shape of replies and the path taken, never their meaning.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.offline.console import run_console
from bot.offline.emulator.world import FakeChat
from bot.offline.media_samples import image_bytes, sound_bytes
from models.usage import UsageRecord
from tests.support.harness import RunningBot, bot_settings, running_bot

LABELS = ("cat", "dog", "car")


async def reply_in(bot: RunningBot, chat: FakeChat) -> str:
    """The text of the bot's next message in `chat` (after the latest thing a person sent)."""
    [call] = await bot.emu.wait_for(
        "sendMessage", lambda call: call.params.get("chat_id") == chat.id, timeout=60
    )
    return str(call.result["text"])


def labels_in(reply: str) -> set[str]:
    return {line.split()[0] for line in reply.splitlines()[1:] if line.strip()}


async def test_a_photo_with_whatis_as_its_caption_gets_top_labels_with_score_bars(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_photo(alice, chat, image_bytes(), caption="/whatis", width=64, height=48)
    reply = await reply_in(bot, chat)
    assert reply.splitlines()[0] in LABELS
    assert labels_in(reply) == set(LABELS)
    assert reply.count("%") == 3 and any(cell in reply for cell in "█░")
    assert [call.method for call in bot.emu.calls if call.method == "getFile"] == ["getFile"]


async def test_whatis_replying_to_a_photo_classifies_that_photo(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    photo = bot.emu.send_photo(alice, chat, image_bytes(orientation=6))
    [reply] = await bot.ask(alice, chat, "/whatis", reply_to=photo["message_id"])
    assert labels_in(reply) == set(LABELS)


async def test_an_image_sent_as_a_file_works_like_a_photo(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    png = image_bytes(image_format="PNG")
    bot.emu.send_document(
        alice, chat, png, file_name="cat.png", mime_type="image/png", caption="/whatis"
    )
    assert labels_in(await reply_in(bot, chat)) == set(LABELS)


async def test_a_tiny_png_that_would_decode_to_a_huge_bitmap_is_refused_before_decoding(
    bot: RunningBot,
) -> None:
    """A decompression bomb: 25 MP (just within the pixel cap) of one colour, a few KB as a
    1-bit PNG, 75 MB as the RGB a model reads."""
    bomb = io.BytesIO()
    Image.new("1", (5000, 5000)).save(bomb, format="PNG", optimize=True)
    assert len(bomb.getvalue()) < 100_000
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_document(
        alice, chat, bomb.getvalue(), file_name="a.png", mime_type="image/png", caption="/whatis"
    )
    assert await reply_in(bot, chat) == (
        "That image would take 75.0 MB of memory to open; the limit is 64.0 MB. "
        "Send it as a photo, or a smaller one."
    )


async def test_labels_scores_the_photo_against_the_users_own_labels(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_photo(alice, chat, image_bytes(), caption="/labels beach, forest, city")
    reply = await reply_in(bot, chat)
    assert labels_in(reply) == {"beach", "forest", "city"}
    bot.emu.send_photo(alice, chat, image_bytes(), caption="/labels beach")
    assert "Give at least two labels" in await reply_in(bot, chat)


async def test_caption_describes_the_photo_in_words(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_photo(alice, chat, image_bytes(), caption="/caption")
    reply = await reply_in(bot, chat)
    assert reply.strip()
    assert "went wrong" not in reply


async def test_transcribe_replying_to_a_voice_note_quotes_what_was_said(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    voice = bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    [reply] = await bot.ask(alice, chat, "/transcribe", reply_to=voice["message_id"])
    assert reply.strip() and "went wrong" not in reply
    quotes = [call for call in bot.emu.calls if call.method == "sendMessage"]
    assert "<blockquote>" in quotes[-1].params["text"] or "heard no words" in reply


async def test_an_mp3_file_with_transcribe_as_its_caption_is_transcribed(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    mp3 = sound_bytes(1.0, container="mp3", codec="libmp3lame", rate=44_100)
    bot.emu.send_document(
        alice, chat, mp3, file_name="memo.mp3", mime_type="audio/mpeg", caption="/transcribe"
    )
    reply = await reply_in(bot, chat)
    assert reply.strip() and "can't read" not in reply and "went wrong" not in reply


async def test_sentiment_replying_to_a_voice_note_works_on_its_transcript(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    logged = watch_usage_log(bot)
    voice = bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    [reply] = await bot.ask(alice, chat, "/sentiment", reply_to=voice["message_id"])
    assert reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")
    tasks = [row.task for row in await usage_rows(bot, logged)]
    assert tasks == ["sentiment"], "the transcription is part of the command, logged once"


async def test_a_text_command_with_its_own_words_does_not_transcribe_the_voice_note(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    voice = bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    await bot.ask(alice, chat, "/sentiment I love it", reply_to=voice["message_id"])
    assert not [call for call in bot.emu.calls if call.method == "getFile"]


async def test_auto_transcribe_is_off_until_the_user_turns_it_on(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    await bot.settle()
    [reply] = await bot.ask(alice, chat, "/set auto_transcribe on")
    assert "auto_transcribe" in reply, "the voice note itself got no reply (replies keep order)"
    bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    reply = await reply_in(bot, chat)
    assert "went wrong" not in reply and "auto_transcribe" not in reply
    assert [call.method for call in bot.emu.calls].count("getFile") == 1


async def test_voice_notes_in_groups_are_transcribed_only_on_command(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    """Even a bot that reads every group message (privacy mode off) waits for /transcribe."""
    settings = bot_settings(tmp_path, tiny_models_dir)
    async with running_bot(settings, group_privacy=False) as bot:
        alice = bot.person("Alice")
        await bot.ask(alice, bot.emu.private_chat(alice), "/set auto_transcribe on")
        group = bot.emu.create_chat("supergroup", "Friends", creator=alice)
        voice = bot.emu.send_voice(alice, group, sound_bytes(1.0), duration=1)
        [reply] = await bot.ask(alice, group, "/transcribe", reply_to=voice["message_id"])
        assert "went wrong" not in reply
        assert [call.method for call in bot.emu.calls].count("getFile") == 1


@pytest.mark.parametrize(
    ("overrides", "send", "expected"),
    [
        ({"max_file_mb": 0.001}, "big_photo", "I can download at most 1 KB"),
        ({"max_image_pixels": 1000}, "photo", "the limit is 1000 pixels"),
        ({"max_image_pixels": 1000}, "big_document", "the limit is 1000 pixels"),
        ({"max_audio_seconds": 2}, "long_voice", "That recording is 3 s long; the limit is 2 s"),
        ({"max_audio_seconds": 2}, "lying_voice", "That recording is 3 s long; the limit is 2 s"),
        ({}, "corrupt_photo", "I can't read that file"),
        ({}, "corrupt_voice", "I can't read that file"),
        ({}, "no_photo", "Send a photo with /whatis as its caption"),
        ({}, "reply_to_text", "Reply to a voice note, audio or video note"),
    ],
)
async def test_every_media_limit_gets_a_clear_one_line_answer(
    tmp_path: Path, tiny_models_dir: Path, overrides: dict[str, Any], send: str, expected: str
) -> None:
    settings = bot_settings(tmp_path, tiny_models_dir, **overrides)
    async with running_bot(settings) as bot:
        alice = bot.person("Alice")
        chat = bot.emu.private_chat(alice)
        emu = bot.emu
        if send == "big_photo":
            emu.send_photo(alice, chat, image_bytes(400, 400), caption="/whatis")
        elif send == "photo":
            emu.send_photo(alice, chat, image_bytes(), caption="/whatis", width=64, height=48)
        elif send == "big_document":
            emu.send_document(alice, chat, image_bytes(), mime_type="image/jpeg", caption="/whatis")
        elif send in ("long_voice", "lying_voice"):
            duration = 3 if send == "long_voice" else 1
            voice = emu.send_voice(alice, chat, sound_bytes(3.0), duration=duration)
            emu.send_message(alice, chat, "/transcribe", reply_to=voice["message_id"])
        elif send == "corrupt_photo":
            emu.send_photo(alice, chat, image_bytes()[:60], caption="/whatis")
        elif send == "corrupt_voice":
            voice = emu.send_voice(alice, chat, b"OggS" + bytes(300), duration=1)
            emu.send_message(alice, chat, "/transcribe", reply_to=voice["message_id"])
        elif send == "no_photo":
            emu.send_message(alice, chat, "/whatis")
        else:
            text = emu.send_message(alice, chat, "just words")
            await reply_in(bot, chat)  # a hint about commands, whatever it says
            emu.send_message(alice, chat, "/transcribe", reply_to=text["message_id"])
        reply = await reply_in(bot, chat)
    assert expected in reply
    assert len(reply.splitlines()) == 1


async def test_photos_from_several_users_run_as_one_batch(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    settings = bot_settings(tmp_path, tiny_models_dir, pool_max_wait_ms=5000, pool_max_batch_size=4)
    async with running_bot(settings) as bot:
        people = [bot.person(name) for name in ("Ann", "Ben", "Cid", "Dee")]
        chats = [bot.emu.private_chat(person) for person in people]
        for person, chat in zip(people, chats, strict=True):
            bot.emu.send_photo(person, chat, image_bytes(), caption="/whatis")
        replies = await asyncio.gather(*(reply_in(bot, chat) for chat in chats))
        assert all(labels_in(reply) == set(LABELS) for reply in replies)
        assert bot.services.pool.metrics.snapshot().batch_sizes == {4: 1}


async def test_the_usage_log_keeps_task_size_and_time_never_content(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    photo = image_bytes()
    logged = watch_usage_log(bot)
    bot.emu.send_photo(alice, chat, photo, caption="/whatis")
    await reply_in(bot, chat)
    [row] = await usage_rows(bot, logged)
    assert (row.task, row.ok, row.input_size) == ("whatis", True, len(photo))
    assert row.latency_ms > 0


def watch_usage_log(bot: RunningBot) -> asyncio.Event:
    """An event set each time the bot has written a usage row (it writes after replying)."""
    store = bot.services.store
    written = asyncio.Event()
    log_usage = store.usage.log

    async def logged(**row: Any) -> None:
        await log_usage(**row)
        written.set()

    store.usage.log = logged  # type: ignore[method-assign]
    return written


async def usage_rows(bot: RunningBot, logged: asyncio.Event) -> list[UsageRecord]:
    await asyncio.wait_for(logged.wait(), timeout=10)
    async with AsyncSession(bot.services.store.engine) as session:
        return list((await session.execute(select(UsageRecord))).scalars())


async def test_the_console_sends_a_local_photo_or_recording_named_after_a_media_command(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    photo, note = tmp_path / "cat.jpg", tmp_path / "note.ogg"
    photo.write_bytes(image_bytes())
    note.write_bytes(sound_bytes(1.0))
    lines = io.StringIO(f"/whatis {photo}\n/labels beach, city {photo}\n/transcribe {note}\n")
    out = io.StringIO()
    await run_console(bot_settings(tmp_path, tiny_models_dir), lines=lines, out=out)
    printed = out.getvalue()
    assert "beach" in printed and "city" in printed
    assert any(f"bot> {label}" in printed for label in LABELS)
    assert "went wrong" not in printed and "can't read" not in printed
    assert printed.count("bot> ") == 3
