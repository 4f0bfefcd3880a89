"""Conversations with the chat model on the bot's own CPU: memory, groups, prompts, limits.

The tiny chat model answers at random; what these tests check is what the
model is asked (the conversation it is shown), what is stored, and what the
person sees.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.engine.chat import ChatPrompt
from bot.offline.media_samples import sound_bytes
from models.base import utcnow
from models.conversation import ConversationMessage
from tests.support.harness import RunningBot, running_bot


def record_prompts(bot: RunningBot) -> list[ChatPrompt]:
    """Every conversation the pool is asked to continue, as the chat model is shown it."""
    prompts: list[ChatPrompt] = []
    pool = bot.services.pool
    submit = pool.submit

    async def recording(task: str, model_id: str, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(inputs, ChatPrompt):
            prompts.append(inputs)
        return await submit(task, model_id, inputs, *args, **kwargs)

    pool.submit = recording  # type: ignore[method-assign]
    return prompts


async def stored(bot: RunningBot) -> list[ConversationMessage]:
    async with bot.services.store.database._sessions() as session:
        rows = await session.scalars(select(ConversationMessage).order_by(ConversationMessage.id))
        return list(rows)


async def test_plain_text_in_a_private_chat_is_a_conversation_that_remembers(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)

    [first] = await bot.ask(alice, chat, "Hello, my name is Alice.")
    [second] = await bot.ask(alice, chat, "What is my name?")
    await bot.settle()

    assert first and second
    assert prompts[0].history == ()
    assert prompts[0].system == bot.settings.chat_system_prompt
    assert [(m.role, m.content) for m in prompts[1].history] == [
        ("user", "Hello, my name is Alice."),
        ("assistant", (await stored(bot))[1].content),
    ]
    rows = await stored(bot)
    assert [row.role for row in rows] == ["user", "assistant", "user", "assistant"]
    assert all(row.author_id == alice.id for row in rows)


async def test_new_starts_afresh_and_forget_deletes_and_counts_everything(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    alice, bob = bot.person("Alice"), bot.person("Bob")
    await bot.ask(alice, bot.emu.private_chat(alice), "/chat Remember the number 7.")
    await bot.ask(bob, bot.emu.private_chat(bob), "Bob was here.")

    [new] = await bot.ask(alice, bot.emu.private_chat(alice), "/new")
    await bot.ask(alice, bot.emu.private_chat(alice), "Which number?")
    await bot.settle()
    [forgot] = await bot.ask(alice, bot.emu.private_chat(alice), "/forget")

    assert new == "Fresh start: I've put our earlier conversation aside."
    assert prompts[-1].history == (), "after /new nothing of the earlier conversation is shown"
    assert forgot == "Deleted 4 messages of yours. I remember nothing of our conversations now."
    assert {row.author_id for row in await stored(bot)} == {bob.id}


async def test_a_conversation_survives_a_restart(bot: RunningBot, tmp_path, tiny_models_dir):
    alice = bot.person("Alice")
    await bot.ask(alice, bot.emu.private_chat(alice), "Remember: the door code is 1234.")
    await bot.settle()

    async with running_bot(bot.settings) as restarted:
        prompts = record_prompts(restarted)
        person = restarted.emu.create_user("Alice")
        assert person.id == alice.id
        await restarted.ask(person, restarted.emu.private_chat(person), "What is the code?")

    assert prompts[0].history[0].content == "Remember: the door code is 1234."


async def test_in_a_group_each_member_has_their_own_conversation_unless_it_is_shared(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    admin, bob = bot.person("Admin"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)

    await bot.ask(admin, group, "/chat I like cats.")
    await bot.ask(bob, group, "/chat I like dogs.")
    assert prompts[-1].history == (), "Bob does not see the admin's conversation"

    [shared] = await bot.ask(admin, group, "/groupconversation shared")
    await bot.ask(admin, group, "/chat One.")
    await bot.ask(bob, group, "/chat Two.")
    assert shared == "This group now has one conversation everyone takes part in."
    assert [m.content for m in prompts[-1].history if m.role == "user"] == ["One."]

    [refused] = await bot.ask(bob, group, "/groupconversation separate")
    assert refused == "Only this group's admins can change its defaults."


async def test_replying_to_a_chat_answer_in_a_group_continues_that_conversation(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    alice = bot.person("Alice")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    bot.emu.send_message(alice, group, "/chat Tell me about Paris.")
    [answer] = await bot.emu.wait_for(
        "editMessageText", lambda c: "stop:" not in str(c.params.get("reply_markup")), timeout=60
    )
    await bot.settle()  # the turn is stored a moment after its last edit
    since = len(bot.emu.calls)

    bot.emu.send_message(alice, group, "And Rome?", reply_to=answer.result["message_id"])
    await bot.emu.wait_for("sendMessage", since=since, timeout=60)
    await bot.settle()
    plain = bot.emu.send_message(alice, group, "just chatting with friends")
    await bot.settle()

    assert [m.content for m in prompts[-1].history if m.role == "user"] == ["Tell me about Paris."]
    assert prompts[-1].message == "And Rome?"
    assert not [
        call
        for call in bot.emu.calls
        if call.method == "sendMessage"
        and (call.result or {}).get("reply_to_message", {}).get("message_id") == plain["message_id"]
    ], "an ordinary group message is not a conversation"


async def test_system_prompts_come_from_the_user_else_the_group_else_the_bot(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    admin, bob = bot.person("Admin"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)

    [group_set] = await bot.ask(admin, group, "/groupsystem Answer like a pirate.")
    await bot.ask(bob, group, "/chat Hi")
    [own] = await bot.ask(bob, group, "/system Answer in French.")
    await bot.ask(bob, group, "/chat Hi again")
    [shown] = await bot.ask(bob, group, "/system")
    [off] = await bot.ask(bob, group, "/system off")
    await bot.ask(bob, bot.emu.private_chat(bob), "Hello")

    assert group_set == "This group's conversations now start with that system prompt."
    assert own == "Your conversations now start with that system prompt."
    assert shown == "The system prompt for your conversations: Answer in French."
    assert off == "System prompt removed; the default applies again."
    assert [p.system for p in prompts] == [
        "Answer like a pirate.",
        "Answer in French.",
        bot.settings.chat_system_prompt,
    ]


async def test_old_turns_that_no_longer_fit_are_dropped_and_the_person_is_told_once(
    bot: RunningBot,
) -> None:
    """The tiny chat model reads 512 tokens; a few long turns overflow it."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set chat max_new_tokens 16")
    long_line = "The quick brown fox jumps over the lazy dog. " * 6
    replies = []
    for index in range(4):
        replies += await bot.ask(alice, chat, f"{index}: {long_line}")
        await bot.settle()  # the turn is stored before the next is read

    told = [reply for reply in replies if "no longer see its oldest messages" in reply]
    assert len(told) == 1
    assert "no longer see its oldest messages" not in replies[0]


async def test_a_message_too_long_on_its_own_is_refused_with_the_limit(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    [refused] = await bot.ask(alice, chat, "word " * 300)
    assert refused.startswith("Your text plus max_new_tokens comes to ")
    assert "this model reads at most 512" in refused
    assert await stored(bot) == []


async def test_a_stopped_answer_is_stored_as_the_person_saw_it(bot: RunningBot) -> None:
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

        runner.model.register_forward_hook(endless)
    bot.emu.send_message(alice, chat, "Tell me a long story.")
    [placeholder] = await bot.emu.wait_for("sendMessage", timeout=60)
    await bot.emu.wait_for("editMessageText", timeout=60)
    bot.emu.press_button(alice, placeholder.result, f"stop:{alice.id}")
    await bot.emu.wait_for(
        "editMessageText", lambda c: "(stopped)" in c.params.get("text", ""), timeout=60
    )
    await bot.settle()

    question, answer = await stored(bot)
    assert question.content == "Tell me a long story."
    assert answer.stopped and answer.content
    final = bot.emu.calls[-1] if bot.emu.calls[-1].method == "editMessageText" else None
    assert final is None or answer.content.strip()[:20] in final.params["text"]


async def test_a_private_voice_note_is_the_next_turn_when_auto_transcribe_is_on(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set auto_transcribe on")
    voice = bot.emu.send_voice(alice, chat, sound_bytes(1.0), duration=1)
    await bot.emu.wait_for(
        "sendMessage",
        lambda c: (
            (c.result or {}).get("reply_to_message", {}).get("message_id") == voice["message_id"]
        ),
        timeout=60,
    )
    await bot.settle()

    heard = [row for row in await stored(bot) if row.role == "user"]
    assert not heard or prompts[-1].message == heard[0].content


async def test_retention_deletes_old_messages(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    await bot.ask(alice, bot.emu.private_chat(alice), "An old message.")
    await bot.settle()

    removed = await bot.services.store.conversations.prune(utcnow() + timedelta(seconds=1))
    assert removed == 2
    assert await stored(bot) == []


@pytest.mark.parametrize("language", ["en", "zh"])
async def test_the_help_tells_how_to_talk(bot: RunningBot, language: str) -> None:
    person = bot.person(f"P{language}", language=language)
    [help_text] = await bot.ask(person, bot.emu.private_chat(person), "/help")
    assert "/chat" in help_text and "/forget" in help_text


async def test_replying_to_another_members_answer_goes_on_with_the_repliers_own_conversation(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    amy, bob = bot.person("Amy"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=amy)
    await bot.ask(bob, group, "/chat I like dogs.")
    await bot.ask(amy, group, "/chat My secret is 42.")
    amys_answer = bot.emu.last_reply(group.id)
    assert amys_answer is not None

    [reply] = await bot.ask(bob, group, "What is her secret?", reply_to=amys_answer["message_id"])
    await bot.settle()

    assert [m.content for m in prompts[-1].history if m.role == "user"] == ["I like dogs."]
    assert (
        "\n\n(The answer you replied to belongs to someone else's conversation, which I keep to "
        "them: this goes on with yours.)"
    ) in reply
    rows = await stored(bot)
    amys = {row.conversation_id for row in rows if row.author_id == amy.id}
    bobs = {row.conversation_id for row in rows if row.author_id == bob.id}
    assert len(amys) == len(bobs) == 1 and amys != bobs, "Bob wrote into his own conversation"
    in_amys = [row.content for row in rows if row.conversation_id in amys]
    assert in_amys[:1] == ["My secret is 42."] and len(in_amys) == 2, "Amy's holds her turn only"


async def test_a_reply_typed_before_the_answer_it_replies_to_is_stored_goes_on_with_it(
    bot: RunningBot,
) -> None:
    """An answer is stored just after it is shown: a reply that arrives in between must not
    be taken for a reply to some other message of the bot's, and dropped."""
    amy = bot.person("Amy")
    group = bot.emu.create_chat("supergroup", "Readers", creator=amy)
    conversations = bot.services.store.conversations
    add_turn, is_answer = conversations.add_turn, conversations.is_answer
    may_store, looked_up = asyncio.Event(), asyncio.Event()

    async def stored_late(*args: Any, **kwargs: Any) -> None:
        await may_store.wait()
        await add_turn(*args, **kwargs)

    async def looking_up(*args: Any, **kwargs: Any) -> bool:
        found = await is_answer(*args, **kwargs)
        looked_up.set()
        return found

    conversations.add_turn = stored_late  # type: ignore[method-assign]
    conversations.is_answer = looking_up  # type: ignore[method-assign]
    await bot.ask(amy, group, "/chat My secret is 42.")
    answer = bot.emu.last_reply(group.id)
    assert answer is not None
    asking = asyncio.create_task(
        bot.ask(amy, group, "What is my secret?", reply_to=answer["message_id"])
    )
    await looked_up.wait()  # the reply was looked up while its answer was not stored yet
    may_store.set()
    await asking
    await bot.settle()

    rows = await stored(bot)
    assert [row.content for row in rows if row.role == "user"] == [
        "My secret is 42.",
        "What is my secret?",
    ]


async def test_in_a_forum_each_topic_has_its_own_conversation_and_answers_stay_in_it(
    bot: RunningBot,
) -> None:
    prompts = record_prompts(bot)
    admin, bob = bot.person("Admin"), bot.person("Bob")
    forum = bot.emu.create_chat("supergroup", "Pets", creator=admin, forum=True)
    cats = bot.emu.create_topic(forum, "Cats", admin)
    dogs = bot.emu.create_topic(forum, "Dogs", admin)

    def ask_in(topic: int, user: Any, text: str) -> dict[str, Any]:
        return bot.emu.send_message(user, forum, text, topic=topic)

    async def answered(asked: dict[str, Any]) -> dict[str, Any]:
        [call] = await bot.emu.wait_for(
            "sendMessage",
            lambda c: (
                (c.result or {}).get("reply_to_message", {}).get("message_id")
                == asked["message_id"]
            ),
            since=0,
            timeout=60,
        )
        await bot.settle()
        return dict(call.result)

    in_cats = await answered(ask_in(cats, admin, "/chat I like cats."))
    in_dogs = await answered(ask_in(dogs, admin, "/chat I like dogs."))
    await answered(ask_in(cats, admin, "/chat What do I like?"))

    assert in_cats["message_thread_id"] == cats and in_dogs["message_thread_id"] == dogs
    assert [m.content for m in prompts[-1].history if m.role == "user"] == ["I like cats."]

    shared = await answered(bot.emu.send_message(admin, forum, "/groupconversation shared"))
    assert shared["text"] == "This group now has one conversation everyone takes part in."
    await answered(ask_in(dogs, bob, "/chat Bob likes dogs too."))
    await answered(ask_in(cats, admin, "/chat Who is here?"))
    await answered(ask_in(dogs, admin, "/chat Who is here?"))

    assert [m.content for m in prompts[-2].history if m.role == "user"] == []
    assert [m.content for m in prompts[-1].history if m.role == "user"] == ["Bob likes dogs too."]
