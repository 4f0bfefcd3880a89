"""`/set <param> <value>` without a task changes what the person is doing in that chat."""

from __future__ import annotations

from tests.support.harness import RunningBot


async def test_while_chatting_set_changes_the_conversation_and_says_so(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "Hello there, how are you?")
    await bot.settle()

    [reply] = await bot.ask(alice, chat, "/set temperature 0.3")

    assert reply == "temperature for chat is now 0.3."
    [conversation] = await bot.ask(alice, chat, "/settings chat")
    assert "temperature = 0.3 · yours" in conversation
    [generation] = await bot.ask(alice, chat, "/settings generate")
    assert "temperature = 0.3" not in generation, "/generate keeps its own temperature"


async def test_set_follows_the_task_used_last_in_this_chat(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/generate Once upon a time")
    await bot.settle()
    [to_generate] = await bot.ask(alice, chat, "/set temperature 0.4")
    await bot.ask(alice, chat, "Tell me more")
    await bot.settle()
    [to_chat] = await bot.ask(alice, chat, "/set temperature 0.6")

    assert to_generate == "temperature for generate is now 0.4."
    assert to_chat == "temperature for chat is now 0.6."
    [generation] = await bot.ask(alice, chat, "/settings generate")
    assert "temperature = 0.4 · yours" in generation


async def test_a_first_set_in_a_private_chat_changes_the_conversation(bot: RunningBot) -> None:
    bob = bot.person("Bob")
    [reply] = await bot.ask(bob, bot.emu.private_chat(bob), "/set max_new_tokens 20")
    assert reply == "max_new_tokens for chat is now 20."


async def test_in_a_group_set_follows_what_that_person_did_there(bot: RunningBot) -> None:
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    await bot.ask(alice, bot.emu.private_chat(alice), "/translate Good morning")
    await bot.ask(alice, group, "/summarize The book is long. It has many chapters. I liked it.")
    await bot.settle()

    [alice_reply] = await bot.ask(alice, group, "/set max_new_tokens 30")
    [bob_reply] = await bot.ask(bob, group, "/set max_new_tokens 30")

    assert alice_reply == "max_new_tokens for summarize is now 30.", "her group request counts"
    assert bob_reply == "max_new_tokens for generate is now 30.", "nothing of his: the first task"


async def test_an_explicit_task_still_wins(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "Hello")
    await bot.settle()
    [reply] = await bot.ask(alice, chat, "/set generate temperature 0.9")
    assert reply == "temperature for generate is now 0.9."
