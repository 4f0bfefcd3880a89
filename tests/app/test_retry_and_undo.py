"""↻ and /retry ask a conversation's last question again from the same history, and the new
answer takes the old one's place; /undo takes the last exchange back. Through the emulator."""

from __future__ import annotations

from typing import Any

from tests.app.test_conversations import record_prompts, stored
from tests.support.harness import RunningBot


def replies_to(message_id: int) -> Any:
    def matches(call: Any) -> bool:
        result = call.result if isinstance(call.result, dict) else {}
        return result.get("reply_to_message", {}).get("message_id") == message_id

    return matches


def retry_data(message: dict[str, Any]) -> str:
    [[button]] = message["reply_markup"]["inline_keyboard"]
    assert button["text"] == "↻"
    return str(button["callback_data"])


async def answer_of(bot: RunningBot, asked: dict[str, Any]) -> dict[str, Any]:
    [call] = await bot.emu.wait_for(
        "sendMessage", replies_to(asked["message_id"]), since=0, timeout=60
    )
    await bot.settle()
    return dict(call.result)


async def test_retry_asks_the_last_question_again_and_the_new_answer_replaces_the_old(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await answer_of(bot, bot.emu.send_message(alice, chat, "Hello, my name is Zebulon."))
    old = await answer_of(bot, bot.emu.send_message(alice, chat, "What is my name?"))
    prompts = record_prompts(bot)

    bot.emu.press_button(alice, old, retry_data(old))
    new = await answer_of(bot, old)

    rows = await stored(bot)
    assert [row.role for row in rows] == ["user", "assistant", "user", "assistant"]
    assert rows[3].telegram_message_id == new["message_id"] != old["message_id"]
    assert rows[3].content.strip()[:20] in new["text"]
    [prompt] = prompts
    assert prompt.message == "What is my name?"
    assert [(m.role, m.content) for m in prompt.history] == [
        ("user", "Hello, my name is Zebulon."),
        ("assistant", rows[1].content),
    ]
    assert retry_data(new) == f"retry:{alice.id}", "the new answer can be asked again too"


async def test_only_the_latest_answer_can_be_asked_again_and_only_by_its_asker(
    bot: RunningBot,
) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    await bot.ask(alice, group, "/chat First question.")
    first = bot.emu.last_reply(group.id)
    await bot.ask(alice, group, "/chat Second question.")
    assert first is not None

    bot.emu.press_button(bob, first, retry_data(first))
    [refused] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
    bot.emu.press_button(alice, first, retry_data(first))
    [older] = await bot.emu.wait_for("sendMessage", replies_to(first["message_id"]), timeout=30)

    assert refused.params["text"] == "Only the person who asked can have it asked again."
    assert older.result["text"] == "Only the latest answer of a conversation can be asked again."


async def test_undo_takes_back_the_last_exchange_and_says_so(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "My cat is called Tom.")
    await bot.ask(alice, chat, "Actually, forget the cat.")
    await bot.settle()
    prompts = record_prompts(bot)

    [undone] = await bot.ask(alice, chat, "/undo")
    await bot.ask(alice, chat, "What is my cat called?")
    await bot.settle()
    await bot.ask(alice, chat, "/undo")
    await bot.ask(alice, chat, "/undo")
    [nothing] = await bot.ask(alice, chat, "/undo")

    assert undone == (
        "Took back your last message and my answer to it: “Actually, forget the cat.”. "
        "The conversation goes on from before it."
    )
    assert [m.content for m in prompts[0].history if m.role == "user"] == ["My cat is called Tom."]
    assert nothing == "This conversation has no question of yours and its answer to go back to yet."
    assert await stored(bot) == []


async def test_retry_with_nothing_to_ask_again_says_so(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    [said] = await bot.ask(alice, bot.emu.private_chat(alice), "/retry")
    assert said == "This conversation has no question of yours and its answer to go back to yet."
