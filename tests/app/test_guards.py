"""Every way into the pool passes the same guards: access, rate limit, daily quota, in-flight cap.

The first test lists every handler the bot registers as reaching the pool or
not, so a handler added without a row here fails it; each way into the pool
then meets every guard in turn through the emulator, and the pool is asked
nothing a guard refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bot.offline.emulator.world import FakeUser, JsonDict
from bot.offline.media_samples import image_bytes, sound_bytes
from bot.tasks import TASKS, Picture, VoiceNote
from tests.support.crash import replies_to
from tests.support.harness import POSITIVE, RunningBot

# The handlers whose updates can end in a model call, and those that never run a model.
REACH_THE_POOL = {
    *(f"{name}_command" for name in TASKS),
    "caption_command",
    "voice_note",
    "conversation_message",
    "inline_query",
}
NEVER_REACH_THE_POOL = {
    "access_gate",
    "track_update",
    "start_command",
    "help_command",
    "cancel_command",
    "unknown_command",
    "settings_command",
    "model_command",
    "set_command",
    "reset_command",
    "models_command",
    "lang_command",
    "group_model_command",
    "group_set_command",
    "group_reset_command",
    "group_quota_command",
    "new_command",
    "forget_command",
    "system_command",
    "group_system_command",
    "group_conversation_command",
    "stats_command",
    "allow_command",
    "deny_command",
    "grant_command",
    "revoke_command",
    "invite_command",
    "settings_button",
    "stop_button",
    "stale_button",
}
QUOTA, IN_FLIGHT, PER_MINUTE = 2, 1, 4
# What each pipeline answers here; fill-mask is the request that holds Alice's place in flight.
ANSWERS: dict[str, Any] = {
    "text-classification": POSITIVE,
    "text-generation": [{"generated_text": "Lovely day, said the model."}],
    "chat": [{"generated_text": "Hello to you too."}],
    "image-classification": [{"label": "cat", "score": 0.9}],
    "automatic-speech-recognition": {"text": "what a lovely day"},
    "fill-mask": [{"token_str": "capital", "score": 0.9, "sequence": "the capital"}],
    "text-to-image": Picture(image_bytes(image_format="PNG"), 1, 64, 48, 1),
    "text-to-speech": VoiceNote(b"OggS a voice note", 1.0),
}


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {
        "daily_quota": QUOTA,
        "max_in_flight_per_user": IN_FLIGHT,
        "rate_limit_per_minute": PER_MINUTE,
    }


@dataclass(frozen=True)
class Way:
    """One way into the pool: what a person sets up once, and the update they send."""

    name: str
    send: Callable[[RunningBot, FakeUser], JsonDict]
    setup: tuple[str, ...] = ()
    inline: bool = False


def _replying_to_a_voice_note(bot: RunningBot, person: FakeUser) -> JsonDict:
    chat = bot.emu.private_chat(person)
    voice = bot.emu.send_voice(person, chat, sound_bytes(), duration=1)
    return bot.emu.send_message(person, chat, "/sentiment", reply_to=voice)


WAYS = [
    Way("command", lambda b, p: b.emu.send_message(p, b.emu.private_chat(p), "/sentiment Lovely")),
    Way(
        "caption",
        lambda b, p: b.emu.send_photo(p, b.emu.private_chat(p), image_bytes(), caption="/whatis"),
    ),
    Way(
        "voice note",
        lambda b, p: b.emu.send_voice(p, b.emu.private_chat(p), sound_bytes(), duration=1),
        setup=("/set auto_transcribe on",),
    ),
    Way("conversation", lambda b, p: b.emu.send_message(p, b.emu.private_chat(p), "Hi there")),
    Way("nested transcript", _replying_to_a_voice_note),
    Way("inline", lambda b, p: b.emu.inline_query(p, "Lovely day"), inline=True),
    Way("picture", lambda b, p: b.emu.send_message(p, b.emu.private_chat(p), "/imagine a cat")),
    Way("voice", lambda b, p: b.emu.send_message(p, b.emu.private_chat(p), "/say Lovely day")),
]


def handler_names(bot: RunningBot) -> set[str]:
    return {
        handler.callback.__name__ for group in bot.app.handlers.values() for handler in group
    }


async def test_every_handler_is_known_to_reach_the_pool_or_not(bot: RunningBot) -> None:
    """A new handler needs a row above, and if it reaches the pool, a way below."""
    assert handler_names(bot) == REACH_THE_POOL | NEVER_REACH_THE_POOL
    ways_in = {"command", "caption", "voice note", "conversation", "inline"}
    assert ways_in <= {way.name for way in WAYS}, "each handler of REACH_THE_POOL has a way"


def stand_ins(release: threading.Event) -> Callable[[str, str], Any]:
    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            if task == "fill-mask":
                release.wait(30)
            return [ANSWERS[task] for _ in inputs]

        return run

    return load


@pytest.mark.parametrize("way", WAYS, ids=[way.name for way in WAYS])
async def test_every_way_into_the_pool_passes_every_guard(bot: RunningBot, way: Way) -> None:
    release = threading.Event()
    await bot.swap_pool(stand_ins(release), pool_max_wait_ms=0)
    pool = bot.services.pool.metrics
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    bot.services.settings.allowed_users.append(alice.id)
    for text in way.setup:
        await bot.ask(alice, bot.emu.private_chat(alice), text)

    async def tried(person: FakeUser, *, settle: bool = True) -> tuple[int, str | None]:
        """How many model calls one update of this way made, and what the person was told."""
        before = pool.requests
        sent = way.send(bot, person)
        if settle:
            await bot.settle()
        elif way.inline:
            await bot.emu.wait_until(lambda: bot.emu.inline_answer(sent) is not None, timeout=30)
        else:
            await bot.emu.wait_until(lambda: bool(replies_to(bot.emu, sent)), timeout=30)
        if way.inline:
            results = (bot.emu.inline_answer(sent) or {})["results"]
            said = " ".join(result["title"] for result in results) or None
        else:
            replies = replies_to(bot.emu, sent)
            said = replies[-1].get("text", replies[-1].get("caption", "")) if replies else None
        return pool.requests - before, said

    def refused(said: str | None, why: str) -> bool:
        """An inline query gets no results; a message gets a reply saying why."""
        return said is None if way.inline else said is not None and said.startswith(why)

    ran, said = await tried(mallory)
    assert ran == 0 and (said is None or said.startswith("This bot is private")), "access"

    # Held from a group: replies keep their order per chat, so one in her own chat would wait.
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    bot.services.settings.allowed_groups.append(group.id)
    bot.emu.send_message(alice, group, "/fill Paris is the <mask>.")
    await bot.emu.wait_until(lambda: pool.requests == 1, timeout=30)
    ran, said = await tried(alice, settle=False)
    assert ran == 0, "in-flight cap"
    assert refused(said, f"You already have {IN_FLIGHT} requests running"), said
    release.set()
    await bot.settle()

    ran, said = await tried(alice)
    assert ran >= 1 and said is not None, "within every limit"

    ran, said = await tried(alice)
    assert ran == 0, "daily quota"
    assert refused(said, f"You've used your {QUOTA} requests for today"), said

    ran, said = await tried(alice)
    assert ran == 0, "rate limit"
    assert refused(said, "Slow down a little"), said
