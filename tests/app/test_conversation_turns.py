"""Turns of one conversation in order, through the emulator: quick messages in a row, a group's
shared conversation with two members writing at once, Stop on a turn others wait for, and /new
and /forget sent while an answer is written.

The first answer is held back (its model call waits until the test lets it go) so the
messages after it surely arrive while it is being answered; were they not to wait for it,
the first to reach the model would be a later one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
from typing import Any

from bot.admission.conversation_turns import ConversationTurns, OnWait
from bot.engine.chat import ChatPrompt
from tests.app.test_conversations import record_prompts, stored
from tests.support.harness import RunningBot


class WatchedTurns(ConversationTurns):
    """The bot's conversation line, counting the turns that had to wait, so a test can await
    a message having reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = 0
        self._changed = asyncio.Condition()

    def turn(
        self, key: Hashable, *, on_wait: OnWait | None = None, place: int | None = None
    ) -> AbstractAsyncContextManager[bool]:
        async def noted() -> None:
            async with self._changed:
                self.waited += 1
                self._changed.notify_all()
            if on_wait is not None:
                await on_wait()

        return super().turn(key, on_wait=noted, place=place)

    async def until_waited(self, count: int) -> None:
        async with asyncio.timeout(60), self._changed:
            await self._changed.wait_for(lambda: self.waited >= count)


def watch_turns(bot: RunningBot) -> WatchedTurns:
    watched = WatchedTurns()
    bot.services.conversation_turns = watched
    return watched


def hold_answer(bot: RunningBot, message: str) -> asyncio.Event:
    """The model call answering `message` waits for the returned event; others run at once."""
    release = asyncio.Event()
    pool = bot.services.pool
    submit = pool.submit

    async def held(task: str, model_id: str, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, ChatPrompt) and inputs.message == message:
            await release.wait()
        return await submit(task, model_id, inputs, *args, **kwargs)

    pool.submit = held  # type: ignore[method-assign]
    return release


def answer_to(bot: RunningBot, message: dict[str, Any]) -> Callable[[Any], bool]:
    def replies(call: Any) -> bool:
        result = call.result if isinstance(call.result, dict) else {}
        return result.get("reply_to_message", {}).get("message_id") == message["message_id"]

    return replies


def said(prompt: ChatPrompt) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in prompt.history]


async def test_a_second_quick_message_waits_for_the_first_answer_and_sees_it(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    release = hold_answer(bot, "Hello, my name is Zebulon.")
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    first = bot.emu.send_message(alice, chat, "Hello, my name is Zebulon.")
    second = bot.emu.send_message(alice, chat, "What is my name?")
    await watched.until_waited(1)
    release.set()
    await bot.emu.wait_for("sendMessage", answer_to(bot, second), since=0, timeout=60)
    await bot.settle()

    rows = await stored(bot)
    assert [(row.role, row.content) for row in rows][:1] == [("user", first["text"])]
    assert said(prompts[1]) == [("user", first["text"]), ("assistant", rows[1].content)]
    assert prompts[1].message == second["text"]
    assert [row.content for row in rows if row.role == "user"] == [first["text"], second["text"]]
    asked = {first["message_id"]: "first", second["message_id"]: "second"}
    answered = [
        asked[m["reply_to_message"]["message_id"]] for m in bot.emu.sent_messages(chat.id)
    ]
    assert answered == ["first", "second"], "the answers come in the order they were asked"


async def test_three_quick_messages_are_answered_in_order_each_seeing_those_before(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    release = hold_answer(bot, "One.")
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    sent = [bot.emu.send_message(alice, chat, text) for text in ("One.", "Two.", "Three.")]
    await watched.until_waited(2)
    release.set()
    await bot.emu.wait_for("sendMessage", answer_to(bot, sent[2]), since=0, timeout=60)
    await bot.settle()

    rows = await stored(bot)
    assert [row.content for row in rows if row.role == "user"] == ["One.", "Two.", "Three."]
    answers = [row.content for row in rows if row.role == "assistant"]
    assert [p.message for p in prompts] == ["One.", "Two.", "Three."]
    assert said(prompts[2]) == [
        ("user", "One."),
        ("assistant", answers[0]),
        ("user", "Two."),
        ("assistant", answers[1]),
    ]


async def test_two_members_writing_at_once_in_a_shared_group_conversation_take_turns(
    bot: RunningBot,
) -> None:
    admin, bob = bot.person("Admin"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)
    await bot.ask(admin, group, "/groupconversation shared")
    prompts = record_prompts(bot)
    release = hold_answer(bot, "The meeting is on Friday.")
    watched = watch_turns(bot)

    bot.emu.send_message(admin, group, "/chat The meeting is on Friday.")
    bot.emu.send_message(bob, group, "/chat When is the meeting?")
    await watched.until_waited(1)
    release.set()
    await bot.settle()

    rows = await stored(bot)
    assert [(row.author_id, row.content) for row in rows if row.role == "user"] == [
        (admin.id, "The meeting is on Friday."),
        (bob.id, "When is the meeting?"),
    ]
    assert said(prompts[1]) == [
        ("user", "The meeting is on Friday."),
        ("assistant", rows[1].content),
    ]


async def test_other_conversations_do_not_wait_for_one_being_answered(bot: RunningBot) -> None:
    prompts = record_prompts(bot)
    release = hold_answer(bot, "Take your time.")
    alice, bob = bot.person("Alice"), bot.person("Bob")

    bot.emu.send_message(alice, bot.emu.private_chat(alice), "Take your time.")
    [answer] = await bot.ask(bob, bot.emu.private_chat(bob), "Hello!")
    release.set()
    await bot.settle()

    assert answer, "Bob was answered while Alice's answer was still held"
    assert [p.message for p in prompts] == ["Hello!", "Take your time."]


async def test_stop_on_the_first_answer_lets_the_waiting_message_see_what_was_shown(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set stream edit")
    await bot.ask(alice, chat, "/set chat max_new_tokens 200")
    model_id = bot.settings.default_models["chat"]
    async with bot.services.pool.lease("chat", model_id) as runner:
        eos = runner.tokenizer.eos_token_id

        def endless(module: object, args: object, output: Any) -> None:
            output.logits[..., eos] = -1e9
            asyncio.run(asyncio.sleep(0.05))

        hook = runner.model.register_forward_hook(endless)
    first = bot.emu.send_message(alice, chat, "Tell me a long story.")
    [placeholder] = await bot.emu.wait_for("sendMessage", answer_to(bot, first), timeout=60)
    await bot.emu.wait_for("editMessageText", timeout=60)
    second = bot.emu.send_message(alice, chat, "Shorter, please.")
    await watched.until_waited(1)
    hook.remove()
    bot.emu.press_button(alice, placeholder.result, f"stop:{alice.id}")
    await bot.emu.wait_for(
        "editMessageText", lambda c: "(stopped)" in c.params.get("text", ""), since=0, timeout=60
    )
    await bot.emu.wait_for("sendMessage", answer_to(bot, second), since=0, timeout=60)
    await bot.settle()

    rows = await stored(bot)
    assert rows[1].stopped and rows[1].content
    assert said(prompts[-1]) == [("user", "Tell me a long story."), ("assistant", rows[1].content)]
    assert prompts[-1].message == "Shorter, please."
    assert [row.content for row in rows if row.role == "user"][-1] == "Shorter, please."


async def test_new_sent_while_an_answer_is_written_applies_after_it_and_says_so(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    release = hold_answer(bot, "Remember the number 7.")
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    bot.emu.send_message(alice, chat, "Remember the number 7.")
    new = bot.emu.send_message(alice, chat, "/new")
    await watched.until_waited(1)
    release.set()
    [said_new] = await bot.emu.wait_for("sendMessage", answer_to(bot, new), since=0, timeout=60)
    [after] = await bot.ask(alice, chat, "Which number?")
    await bot.settle()

    assert said_new.result["text"] == (
        "Fresh start, once the answer I was writing was done: I've put our earlier "
        "conversation aside, that answer included."
    )
    assert after and prompts[-1].history == ()
    assert len({row.conversation_id for row in await stored(bot)}) == 2


async def test_forget_sent_while_an_answer_is_written_forgets_that_answer_too(
    bot: RunningBot,
) -> None:
    release = hold_answer(bot, "My secret is 42.")
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    bot.emu.send_message(alice, chat, "My secret is 42.")
    forget = bot.emu.send_message(alice, chat, "/forget")
    await watched.until_waited(1)
    release.set()
    [said_forget] = await bot.emu.wait_for(
        "sendMessage", answer_to(bot, forget), since=0, timeout=60
    )
    await bot.settle()

    assert said_forget.result["text"] == (
        "Once the answer I was writing was done, I deleted 2 messages of yours, that answer "
        "included. I remember nothing of our conversations now."
    )
    assert await stored(bot) == []


async def test_telegrams_own_stop_on_a_draft_while_the_next_message_waits(bot: RunningBot) -> None:
    """Native Stop (Bot API 10.3) on a private chat's draft stops the turn like the Stop
    button: what was written is kept, marked as stopped, and the waiting message sees it."""
    prompts = record_prompts(bot)
    watched = watch_turns(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set chat max_new_tokens 200")
    model_id = bot.settings.default_models["chat"]
    async with bot.services.pool.lease("chat", model_id) as runner:
        eos = runner.tokenizer.eos_token_id

        def endless(module: object, args: object, output: Any) -> None:
            output.logits[..., eos] = -1e9
            asyncio.run(asyncio.sleep(0.05))

        hook = runner.model.register_forward_hook(endless)
    bot.emu.send_message(alice, chat, "Tell me a long story.")
    [written] = await bot.emu.wait_for(
        "sendMessageDraft", lambda c: bool(c.params.get("text")), timeout=60
    )
    second = bot.emu.send_message(alice, chat, "Shorter, please.")
    await watched.until_waited(1)
    hook.remove()
    bot.emu.stop_generation(alice, written.params["draft_id"])
    [stopped] = await bot.emu.wait_for(
        "sendMessage", lambda c: "(stopped)" in (c.result or {}).get("text", ""), timeout=60
    )
    await bot.emu.wait_for("sendMessage", answer_to(bot, second), since=0, timeout=60)
    await bot.settle()

    rows = await stored(bot)
    assert rows[1].stopped and rows[1].content
    assert rows[1].content.strip()[:10] in stopped.result["text"]
    assert said(prompts[-1]) == [("user", "Tell me a long story."), ("assistant", rows[1].content)]
