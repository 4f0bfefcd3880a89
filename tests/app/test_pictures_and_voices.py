"""/imagine and /say end to end: a picture with its prompt as the caption (sendPhoto), a
voice note as long as its speech (sendVoice), the drawing's status line with its step and
a Stop button, a request refused before it is queued, and both as replies to a text.

Tiny random models draw and speak (`bot/offline/demo_models.py`), so tests check what a
person would notice (a photo of the asked size, a caption, an OGG voice note, which voice
read it), never what the picture shows.
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.engine.controls import RequestControl
from bot.errors import UnspeakableText
from bot.offline.emulator.world import FakeChat, FakeUser, JsonDict
from bot.tasks import Picture, VoiceNote
from models.usage import UsageRecord
from tests.support.harness import RunningBot

WAIT = 60


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    # A status line at once, so a test need not wait two seconds to see it.
    return {"queue_status_after_s": 0.0}


async def answer_to(bot: RunningBot, sent: JsonDict, method: str) -> JsonDict:
    """The bot's message (sent by `method`) that replies to `sent`."""
    [call] = await bot.emu.wait_for(
        method,
        lambda call: isinstance(call.result, dict)
        and call.result.get("reply_to_message", {}).get("message_id") == sent["message_id"],
        timeout=WAIT,
    )
    return dict(call.result)


def sent_by(bot: RunningBot, method: str) -> list[JsonDict]:
    return [call.result for call in bot.emu.calls if call.method == method and not call.error]


def file_of(bot: RunningBot, file_id: str) -> bytes:
    return bot.emu.world.files[file_id].data


async def usage_models(bot: RunningBot, task: str) -> list[str]:
    """The model each logged request of `task` ran on, oldest first."""
    await bot.settle()
    async with AsyncSession(bot.services.store.engine) as session:
        rows = await session.execute(
            select(UsageRecord.model_id).where(UsageRecord.task == task).order_by(UsageRecord.id)
        )
        return list(rows.scalars())


async def test_imagine_answers_with_a_picture_captioned_with_its_prompt(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set imagine size 256")
    sent = bot.emu.send_message(alice, chat, "/imagine a red fox <in> the snow")
    photo = await answer_to(bot, sent, "sendPhoto")
    prompt, details = photo["caption"].split("\n")
    assert prompt == "a red fox <in> the snow", "the prompt as typed, escaped on the way"
    assert details.startswith("256×256 · 1 step · seed ")
    png = file_of(bot, photo["photo"][-1]["file_id"])
    assert Image.open(io.BytesIO(png)).size == (256, 256)
    await bot.settle()
    assert not [m for m in bot.emu.sent_messages(chat.id) if m.get("text", "").startswith("🎨")], (
        "the status line goes once the picture is there"
    )


async def test_a_seed_draws_the_same_picture_again(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set imagine size 256")
    await bot.ask(alice, chat, "/set imagine seed 7")
    pictures = []
    for _ in range(2):
        sent = bot.emu.send_message(alice, chat, "/imagine a lighthouse")
        photo = await answer_to(bot, sent, "sendPhoto")
        assert photo["caption"].endswith("seed 7")
        pictures.append(file_of(bot, photo["photo"][-1]["file_id"]))
    assert pictures[0] == pictures[1]


async def test_say_answers_with_a_voice_note_as_long_as_its_speech(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    sent = bot.emu.send_message(alice, chat, "/say Good morning. The weather is fine today.")
    voice = await answer_to(bot, sent, "sendVoice")
    assert "caption" not in voice, "a voice note needs no caption"
    assert voice["voice"]["duration"] >= 1
    assert file_of(bot, voice["voice"]["file_id"]).startswith(b"OggS")
    assert await usage_models(bot, "say") == [bot.settings.default_models["say"]]


async def test_chinese_text_is_read_by_the_chinese_voice(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    sent = bot.emu.send_message(alice, chat, "/say 今天天气很好。")
    await answer_to(bot, sent, "sendVoice")
    english = bot.emu.send_message(alice, chat, "/say It is a fine day.")
    await answer_to(bot, english, "sendVoice")
    voices = bot.settings.default_models
    assert await usage_models(bot, "say") == [voices["say.zh"], voices["say"]]


async def test_a_voice_the_person_chose_reads_every_language(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    chinese = bot.settings.default_models["say.zh"]
    await bot.ask(alice, chat, f"/model say {chinese}")
    bot.emu.send_message(alice, chat, "/say Hello there")
    assert await usage_models(bot, "say") == [chinese]


@pytest.mark.parametrize("command", ["/say", "/imagine"])
async def test_say_and_imagine_replying_to_a_text_use_its_words(
    bot: RunningBot, command: str
) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    await bot.ask(alice, bot.emu.private_chat(alice), "/set imagine size 256")
    text = bot.emu.send_message(bob, group, "A quiet harbour at dawn.")
    sent = bot.emu.send_message(alice, group, command, reply_to=text["message_id"])
    method = "sendVoice" if command == "/say" else "sendPhoto"
    answer = await answer_to(bot, sent, method)
    if command == "/imagine":
        assert answer["caption"].startswith("A quiet harbour at dawn.\n")


async def test_a_picture_past_the_work_budget_is_refused_before_it_is_queued(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set imagine size 1024")
    await bot.ask(alice, chat, "/set imagine steps 50")
    before = bot.services.pool.metrics.requests
    [reply] = await bot.ask(alice, chat, "/imagine a cathedral")
    assert reply == (
        "A 1024×1024 picture in 50 steps is 52.5 megapixel-steps of drawing; one request may "
        "ask for at most 4. Choose a smaller size or fewer steps with /set."
    )
    assert bot.services.pool.metrics.requests == before
    assert not sent_by(bot, "sendPhoto")


async def test_say_refuses_a_text_longer_than_one_voice_note(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    limit = bot.settings.max_speech_chars
    [reply] = await bot.ask(alice, chat, "/say " + "a" * (limit + 1))
    assert reply == f"That text is {limit + 1} characters long; the limit is {limit}."
    assert not sent_by(bot, "sendVoice")


class SlowPainter:
    """A picture runner that reports its first step, then waits for its caller to go."""

    takes_controls = True

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def __call__(
        self, inputs: list[str], *, batch_size: int, controls: list[RequestControl], **params: Any
    ) -> list[None]:
        for control in controls:
            control.progress(1, 4)
            if control.stopped.wait(WAIT):
                self.stopped.set()
        return [None for _ in inputs]


async def drawing_status(bot: RunningBot, alice: FakeUser, chat: FakeChat) -> tuple[JsonDict, SlowPainter]:
    """Alice asks for a picture that never finishes; the status line once it says step 1."""
    painter = SlowPainter()
    await bot.swap_pool(lambda task, model_id: painter)
    bot.emu.send_message(alice, chat, "/imagine a slow sunset")
    [shown] = await bot.emu.wait_for(
        "editMessageText", lambda c: "step 1 of 4" in c.params.get("text", ""), timeout=WAIT
    )
    return dict(shown.result), painter


async def test_the_status_line_says_the_step_and_stop_ends_the_drawing(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    status, painter = await drawing_status(bot, alice, chat)
    assert status["text"] == "🎨 Drawing… step 1 of 4"
    bot.emu.press_button(alice, status, f"stop:{alice.id}")
    await bot.emu.wait_for(
        "editMessageText",
        lambda c: c.params.get("message_id") == status["message_id"]
        and c.params.get("text") == "Stopped.",
        timeout=WAIT,
    )
    await asyncio.to_thread(painter.stopped.wait, WAIT)
    assert painter.stopped.is_set(), "the runner heard the stop between steps"
    await bot.settle()
    assert not sent_by(bot, "sendPhoto")


async def test_cancel_stops_a_drawing_between_steps(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    _, painter = await drawing_status(bot, alice, chat)
    bot.emu.send_message(alice, chat, "/cancel")
    await asyncio.to_thread(painter.stopped.wait, WAIT)
    assert painter.stopped.is_set()
    await bot.settle()
    assert not sent_by(bot, "sendPhoto")


async def test_a_photo_answer_comes_back_as_a_file_when_telegram_refuses_it_as_a_photo(
    bot: RunningBot,
) -> None:
    """Sides past Telegram's 10,000 px in all: the picture still arrives, as a file."""
    wide = io.BytesIO()
    Image.new("RGB", (9000, 1100)).save(wide, format="PNG")
    picture = Picture(wide.getvalue(), seed=1, width=9000, height=1100, steps=1)
    await bot.swap_pool(lambda task, model_id: lambda inputs, **_: [picture for _ in inputs])
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    sent = bot.emu.send_message(alice, chat, "/imagine a very wide panorama")
    document = await answer_to(bot, sent, "sendDocument")
    assert document["caption"].startswith("a very wide panorama\n")
    assert file_of(bot, document["document"]["file_id"]) == picture.png


def chat_and_voice(answer: str) -> Any:
    """Stand-in models: the chat model answers `answer`, every voice reads a short note."""

    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], **params: Any) -> list[Any]:
            if task == "text-to-speech":
                return [VoiceNote(b"OggS " + text.encode(), 2.4) for text in inputs]
            return [[{"generated_text": answer}] for _ in inputs]

        return run

    return load


async def test_voice_replies_read_conversation_answers_aloud_under_the_text(
    bot: RunningBot,
) -> None:
    await bot.swap_pool(chat_and_voice("Hello to you too."))
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    [reply] = await bot.ask(alice, chat, "/set voice_replies on")
    assert reply == "voice_replies for — is now on."
    [answer] = await bot.ask(alice, chat, "Hello there")
    assert answer == "Hello to you too."
    shown = bot.emu.last_reply(chat.id)
    voice = await bot.emu.wait_for("sendVoice", timeout=WAIT)
    note = voice[0].result
    assert note["voice"]["duration"] == 3, "rounded up, as sendVoice wants whole seconds"
    assert file_of(bot, note["voice"]["file_id"]) == b"OggS Hello to you too."
    assert shown is not None and note["reply_to_message"]["text"] == "Hello to you too."


async def test_answers_are_not_spoken_unless_asked_for_nor_in_groups(bot: RunningBot) -> None:
    await bot.swap_pool(chat_and_voice("Fine, thanks."))
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "Hello there")
    await bot.settle()
    assert not sent_by(bot, "sendVoice"), "off unless asked for"
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    await bot.ask(alice, chat, "/set voice_replies on")
    await bot.ask(alice, group, "/chat Hello, group")
    await bot.settle()
    assert not sent_by(bot, "sendVoice")


async def test_an_answer_the_voice_cannot_read_says_so_in_one_line(bot: RunningBot) -> None:
    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], **params: Any) -> list[Any]:
            if task == "text-to-speech":
                raise UnspeakableText()
            return [[{"generated_text": "🙂🙂"}] for _ in inputs]

        return run

    await bot.swap_pool(load)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set voice_replies on")
    [answer] = await bot.ask(alice, chat, "Smile")
    assert answer == "🙂🙂"
    [line] = await bot.emu.wait_for(
        "sendMessage", lambda c: "Not read aloud" in c.params.get("text", ""), timeout=WAIT
    )
    assert line.result["text"] == (
        "Not read aloud: This voice can't pronounce any of that text. "
        "Pick another voice with /model say …."
    )
    assert line.result["reply_to_message"]["text"] == "🙂🙂"
