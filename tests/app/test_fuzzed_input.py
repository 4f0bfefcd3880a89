"""Whatever people type, the bot answers or stays silent on purpose, and nobody else's settings move.

Hypothesis sends text through the emulator to the real handlers: arbitrary
unicode, right-to-left and zero-width characters, emoji sequences, HTML and
Markdown look-alikes, 100 KB messages, every command with junk arguments,
parameter values of every wrong type and range, forged button data and inline
queries, in private chats and in a group. After each one: no unhandled
exception reached the error handler or the log, and a bystander's own settings
and the group's defaults are as their owners left them. The examples are
derandomized, so every run tries the same cases.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram.ext import CommandHandler

from bot.offline.emulator.world import FakeChat, FakeUser, JsonDict
from bot.tasks import TASKS
from tests.support.harness import RunningBot, bot_settings, running_bot
from tests.support.loop_thread import LoopThread

GENERIC_ERROR = "Something went wrong on my side. Please try again."
PARAMS = [
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "num_return_sequences",
    "do_sample",
    "stream",
    "auto_transcribe",
    "bogus",
]
TRICKY = [
    "\u202eevil\u202c",
    "مرحبا بالعالم",
    "שלום",
    "\u200b\u200c\u200d\ufeff",
    "👩‍👩‍👧‍👦🏳️‍🌈",
    "<b>bold</b>",
    "<script>alert(1)</script>",
    "</code>&amp;&lt;",
    "<a href='x'>",
    "*bold* _it_",
    "`code` ```pre```",
    "[link](http://x)",
    "||spoiler||",
    "\\",
    "%s %d {0}",
    "\r\n\t",
    "ﷺ",
    "Z̸̢̛a̵l̴g̷o",
    "𝕳𝖊𝖑𝖑𝖔",
    "<mask>",
    "[MASK]",
    "|",
    "fr:",
    "xx:",
    "0",
    "-1",
    "1e309",
    "nan",
]
WRONG_VALUES = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "none", "null", "[]", "{}", "1e309", "-0", "0x10", "½"]),
    st.text(max_size=12),
)
JUNK = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(TRICKY), max_size=6).map(" ".join),
    st.text(alphabet=st.characters(categories=["Mn", "Cf", "Zs", "So", "Lo"]), max_size=60),
)
HUGE = st.text(min_size=1, max_size=4).map(lambda unit: (unit * 100_000)[:100_000])


@dataclass(frozen=True)
class Cast:
    """The people and chats of the module: fuzzers, a bystander and a group she runs."""

    bot: RunningBot
    loop: LoopThread
    fuzzers: list[FakeUser]
    bystander: FakeUser
    group: FakeChat
    commands: list[str]


@pytest.fixture(scope="module")
def cast(tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Any) -> Iterator[Cast]:
    loop = LoopThread()
    settings_ = bot_settings(tmp_path_factory.mktemp("fuzz"), tiny_models_dir)
    context = running_bot(settings_)
    bot = loop.run(context.__aenter__())
    try:
        bystander = bot.person("Bystander")
        group = bot.emu.create_chat("supergroup", "Readers", creator=bystander)
        for text in ["/set generate temperature 0.3", "/model sentiment default"]:
            loop.run(bot.ask(bystander, bot.emu.private_chat(bystander), text))
        loop.run(bot.ask(bystander, group, "/groupset max_new_tokens 17"))
        fuzzers = [bot.person(name) for name in ("Mallory", "Trudy", "Eve")]
        commands = sorted(
            {
                c
                for h in bot.app.handlers.get(0, [])
                if isinstance(h, CommandHandler)
                for c in h.commands
            }
        )
        yield Cast(bot, loop, fuzzers, bystander, group, commands)
    finally:
        loop.run(context.__aexit__(None, None, None))
        loop.close()


@pytest.fixture(scope="module")
def log_errors() -> Iterator[list[logging.LogRecord]]:
    """Every ERROR logged while the module runs (an unhandled exception logs one)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.ERROR)
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)


def commands_with_junk(commands: list[str]) -> st.SearchStrategy[str]:
    mention = st.sampled_from(["", "", "@hfbot_test_bot", "@someotherbot"])
    return st.builds(
        lambda c, m, args: f"/{c}{m} {args}".rstrip(), st.sampled_from(commands), mention, JUNK
    )


def set_commands() -> st.SearchStrategy[str]:
    task = st.sampled_from(["", *sorted(TASKS), "nosuch"])
    verb = st.sampled_from(["set", "groupset"])
    return st.builds(
        lambda v, t, p, value: " ".join(part for part in (f"/{v}", t, p, value) if part),
        verb,
        task,
        st.sampled_from(PARAMS),
        WRONG_VALUES,
    )


def run_and_check(cast: Cast, errors: list[logging.LogRecord], act: Any) -> None:
    bot = cast.bot
    since, logged = len(bot.emu.calls), len(errors)
    cast.loop.run(act())
    cast.loop.run(settled(bot))
    texts = [
        call.params.get("text")
        for call in bot.emu.calls[since:]
        if call.method in ("sendMessage", "editMessageText", "answerCallbackQuery")
    ]
    assert GENERIC_ERROR not in texts, "an unhandled exception reached the person"
    assert errors[logged:] == [], [r.getMessage() for r in errors[logged:]]
    assert cast.loop.run(settings_of(cast)) == (0.3, None, 17)


async def settled(bot: RunningBot) -> None:
    """Until the update sent is fully handled: fetched, then processed."""
    await bot.emu.wait_until(lambda: bot.emu.pending_updates == 0, timeout=60)
    await bot.app.update_queue.join()


async def settings_of(cast: Cast) -> tuple[Any, Any, Any]:
    store = cast.bot.services.store
    mine = await store.preferences.user_choice(cast.bystander.id, "generate")
    sentiment = await store.preferences.user_choice(cast.bystander.id, "sentiment")
    group = await store.preferences.chat_choice(cast.group.id, "generate")
    return (
        mine.params.get("temperature") if mine else None,
        sentiment.model_id if sentiment else None,
        group.params.get("max_new_tokens") if group else None,
    )


FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(data=st.data())
def test_any_message_gets_a_reply_or_deliberate_silence(
    cast: Cast, log_errors: list[logging.LogRecord], data: st.DataObject
) -> None:
    text = data.draw(
        st.one_of(JUNK, HUGE, commands_with_junk(cast.commands), set_commands()), label="text"
    )
    person = data.draw(st.sampled_from(cast.fuzzers), label="person")
    in_group = data.draw(st.booleans(), label="in group")
    chat = cast.group if in_group else cast.bot.emu.private_chat(person)

    async def act() -> None:
        cast.bot.emu.send_message(person, chat, text)

    run_and_check(cast, log_errors, act)


@FUZZ
@given(data=st.data())
def test_forged_buttons_and_inline_queries_get_a_short_answer_or_nothing(
    cast: Cast, log_errors: list[logging.LogRecord], data: st.DataObject
) -> None:
    person = data.draw(st.sampled_from(cast.fuzzers), label="person")
    bystander_id = str(cast.bystander.id)
    forged = st.one_of(
        st.text(max_size=64),
        st.builds(
            lambda owner, verb, rest: f"cfg:{owner}:{verb}:{rest}",
            st.sampled_from([bystander_id, str(person.id), "x", "-1", ""]),
            st.sampled_from(["set", "view", "reset", "model", "x"]),
            st.lists(
                st.sampled_from([*sorted(TASKS), *PARAMS, "0.9", "1e9", "", "nan"]), max_size=3
            ).map(":".join),
        ),
        st.builds(lambda rest: f"stop:{rest}", st.text(max_size=20)),
    )
    inline = data.draw(st.booleans(), label="inline")
    payload = data.draw(JUNK if inline else forged, label="payload")
    chat = cast.bot.emu.private_chat(person)

    async def act() -> None:
        if inline:
            cast.bot.emu.inline_query(person, payload)
            return
        menu = await menu_of(cast.bot, person, chat)
        cast.bot.emu.press_button(person, menu, payload, forged=True)

    run_and_check(cast, log_errors, act)


async def menu_of(bot: RunningBot, person: FakeUser, chat: FakeChat) -> JsonDict:
    """A message of the bot's in the person's chat to press buttons on (/settings, once)."""
    found = bot.emu.last_reply(chat.id)
    if found is None:
        await bot.ask(person, chat, "/settings")
        found = bot.emu.last_reply(chat.id)
    assert found is not None
    return found
