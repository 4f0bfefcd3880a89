"""A chat model that sees, end to end: a photo with a caption in a private chat (or a photo
that `/chat <question>` replies to) is a turn with the picture; a text-only model says so in
one line and names one that sees; the photo joins the stored history as Telegram's file_id
and is read again, through the Bot API, for the turns after it.

A tiny random Idefics3 (SmolVLM's architecture) sees the photos, so the tests check the
path a photo takes and what is stored, never what the model says about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.offline.emulator.world import FakeChat, FakeUser, JsonDict
from bot.offline.media_samples import image_bytes
from bot.tasks import VISION_CHAT_MODEL
from models.conversation import ConversationMessage
from tests.support.harness import RunningBot

WAIT = 60


@pytest.fixture
def bot_overrides(tiny_models_dir: Path) -> dict[str, Any]:
    """The tiny models' folder is the bot's model folder: `/model chat vision_chat` picks
    the tiny model that sees, as the console's demo does."""
    return {"model_dir": tiny_models_dir}


async def reply_to(bot: RunningBot, sent: JsonDict) -> str:
    """The text of the bot's final answer to `sent` (a draft's answer is sent as a message)."""
    [call] = await bot.emu.wait_for(
        "sendMessage",
        lambda call: isinstance(call.result, dict)
        and call.result.get("reply_to_message", {}).get("message_id") == sent["message_id"],
        timeout=WAIT,
    )
    await bot.settle()
    return str(call.result["text"])


def photo_id(message: JsonDict) -> str:
    return str(message["photo"][-1]["file_id"])


def files_read(bot: RunningBot) -> list[str]:
    return [str(call.params["file_id"]) for call in bot.emu.calls if call.method == "getFile"]


async def stored_messages(bot: RunningBot) -> list[tuple[str, str, str | None]]:
    async with AsyncSession(bot.services.store.engine) as session:
        rows = await session.execute(
            select(
                ConversationMessage.role,
                ConversationMessage.content,
                ConversationMessage.image_file_id,
            ).order_by(ConversationMessage.id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def seeing(bot: RunningBot, alice: FakeUser, chat: FakeChat, model: Path) -> None:
    [reply] = await bot.ask(alice, chat, f"/model chat {model.name}")
    assert reply.startswith("Your model for chat is now"), reply


async def test_a_text_only_chat_model_says_in_one_line_that_it_cannot_see(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    sent = bot.emu.send_photo(alice, chat, image_bytes(), caption="What is in this photo?")
    assert await reply_to(bot, sent) == (
        "This chat model reads text only, so it can't look at pictures. "
        f"Pick one that can with /model chat {VISION_CHAT_MODEL}."
    )
    assert await stored_messages(bot) == [], "a refused turn is not part of the conversation"


async def test_a_captioned_photo_is_a_turn_and_its_file_id_joins_the_history(
    bot: RunningBot, tiny_vision_chat: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await seeing(bot, alice, chat, tiny_vision_chat)
    sent = bot.emu.send_photo(alice, chat, image_bytes(), caption="What is in this photo?")
    answer = await reply_to(bot, sent)
    assert "went wrong" not in answer and "can't look at pictures" not in answer
    assert files_read(bot) == [photo_id(sent)]
    [question, _] = await stored_messages(bot)
    assert question == ("user", "What is in this photo?", photo_id(sent)), "a reference, no bytes"

    follow_up = bot.emu.send_message(alice, chat, "And what colour is it?")
    await reply_to(bot, follow_up)
    assert files_read(bot) == [photo_id(sent)] * 2, "the next turn is shown the photo again"
    assert [row[2] for row in await stored_messages(bot)] == [photo_id(sent), None, None, None]


async def test_chat_replying_to_a_photo_asks_about_that_photo(
    bot: RunningBot, tiny_vision_chat: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await seeing(bot, alice, chat, tiny_vision_chat)
    photo = bot.emu.send_photo(alice, chat, image_bytes())
    await bot.settle()
    assert not bot.emu.sent_messages(chat.id)[1:], "a photo without words is no turn"
    sent = bot.emu.send_message(alice, chat, "/chat Where was this taken?", reply_to=photo)
    await reply_to(bot, sent)
    assert files_read(bot) == [photo_id(photo)]
    assert (await stored_messages(bot))[0] == ("user", "Where was this taken?", photo_id(photo))


async def test_an_image_sent_as_a_file_is_a_turn_like_a_photo(
    bot: RunningBot, tiny_vision_chat: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await seeing(bot, alice, chat, tiny_vision_chat)
    sent = bot.emu.send_document(
        alice,
        chat,
        image_bytes(image_format="PNG"),
        file_name="cat.png",
        mime_type="image/png",
        caption="Describe it",
    )
    await reply_to(bot, sent)
    [(_, _, stored)] = [row for row in await stored_messages(bot) if row[0] == "user"]
    assert stored == sent["document"]["file_id"]


async def test_only_the_newest_photos_are_read_again(
    bot: RunningBot, tiny_vision_chat: Path
) -> None:
    """A model encodes every picture it is shown at every turn: the newest two are shown,
    older ones only named."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await seeing(bot, alice, chat, tiny_vision_chat)
    photos = []
    for n in range(3):
        sent = bot.emu.send_photo(alice, chat, image_bytes(), caption=f"Photo {n}?")
        await reply_to(bot, sent)
        photos.append(photo_id(sent))
    before = len(files_read(bot))
    follow_up = bot.emu.send_message(alice, chat, "Which was best?")
    await reply_to(bot, follow_up)
    assert sorted(files_read(bot)[before:]) == sorted(photos[1:])


async def test_forget_deletes_the_photo_references_with_the_words(
    bot: RunningBot, tiny_vision_chat: Path
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await seeing(bot, alice, chat, tiny_vision_chat)
    sent = bot.emu.send_photo(alice, chat, image_bytes(), caption="What is this?")
    await reply_to(bot, sent)
    await bot.ask(alice, chat, "/forget")
    assert await stored_messages(bot) == []
