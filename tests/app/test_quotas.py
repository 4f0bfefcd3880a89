"""Daily quotas: a clear refusal naming the reset, only answered requests count, the bot's
admins exempt, a group's own quota set by its admins, what is left in /settings, and a
database that is down never blocking a request."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.offline.media_samples import sound_bytes
from handlers.request import quota
from tests.support.harness import POSITIVE, RunningBot

QUOTA = 2
REFUSAL = re.compile(
    rf"^You've used your {QUOTA} requests for today\. "
    r"Your quota resets at 00:00 UTC, in \d+ h \d+ min\.$"
)


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"daily_quota": QUOTA}


def answered(reply: str) -> bool:
    return reply.splitlines()[0] in ("POSITIVE", "NEGATIVE")


def test_the_day_starts_at_midnight_utc_and_the_wait_rounds_up_to_a_minute() -> None:
    evening = datetime(2026, 11, 28, 20, 47, 30, tzinfo=UTC)
    assert quota.day_start(evening) == datetime(2026, 11, 28, tzinfo=UTC)
    assert quota.reset_values(evening) == {"reset": "00:00 UTC", "hours": 3, "minutes": 13}
    midnight = datetime(2026, 11, 29, tzinfo=UTC)
    assert quota.day_start(midnight) == midnight
    assert quota.reset_values(midnight) == {"reset": "00:00 UTC", "hours": 24, "minutes": 0}
    assert quota.reset_values(midnight - timedelta(seconds=1))["minutes"] == 1


async def test_over_quota_is_refused_with_the_limit_and_the_reset_and_never_queued(
    bot: RunningBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Late in today's (UTC) day, so the wait until the reset is known; rows logged now still
    # fall after today's midnight, so they count.
    now = datetime.now(UTC).replace(hour=20, minute=47, second=30, microsecond=0)
    monkeypatch.setattr(quota, "utcnow", lambda: now)
    ran: list[str] = []

    def load(task: str, model_id: str) -> Any:
        def run(inputs: list[Any], *, batch_size: int, **params: Any) -> list[Any]:
            ran.extend(inputs)
            return [POSITIVE for _ in inputs]

        return run

    await bot.swap_pool(load)
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    for n in range(QUOTA):
        [reply] = await bot.ask(alice, chat, f"/sentiment fine {n}")
        assert answered(reply)
    [reply] = await bot.ask(alice, chat, "/sentiment one too many")
    assert reply == (
        "You've used your 2 requests for today. Your quota resets at 00:00 UTC, in 3 h 13 min."
    )
    await bot.settle()
    assert ran == ["fine 0", "fine 1"], "the refused request never reached a model"
    # The rows carry the real clock, which may be before or after the pretended evening.
    since = quota.day_start(now)
    until = datetime.now(UTC) + timedelta(minutes=1)
    summary = (await bot.services.store.usage.series(since, until, timedelta(days=1))).summary
    assert (summary.requests, summary.errors) == (3, 1), "the refusal is logged as an error"


async def test_a_burst_cannot_overshoot_the_quota(bot: RunningBot) -> None:
    """Requests still running (or answered but not yet logged) count too."""
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    for n in range(QUOTA + 1):
        bot.emu.send_message(alice, chat, f"/sentiment burst {n}")
    sent = await bot.emu.wait_for("sendMessage", count=QUOTA + 1, timeout=60)
    replies = [call.result["text"] for call in sent]
    assert sum(answered(reply) for reply in replies) == QUOTA
    assert sum(bool(REFUSAL.match(reply)) for reply in replies) == 1


async def test_the_refusal_is_in_the_persons_language(bot: RunningBot) -> None:
    li = bot.person("Li", language="zh")
    chat = bot.emu.private_chat(li)
    for _ in range(QUOTA):
        await bot.ask(li, chat, "/sentiment 很好")
    [reply] = await bot.ask(li, chat, "/sentiment 很好")
    assert re.fullmatch(
        r"你今天的 2 次请求已经用完。额度在 00:00 UTC 重置，还有 \d+ 小时 \d+ 分钟。", reply
    )


async def test_failed_requests_do_not_count(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    for _ in range(3):
        [reply] = await bot.ask(alice, chat, "/sentiment")
        assert reply.startswith("Please give me some text")
    [reply] = await bot.ask(alice, chat, "/fill no mask here")
    assert "<mask>" in reply
    for n in range(QUOTA):
        [reply] = await bot.ask(alice, chat, f"/sentiment fine {n}")
        assert answered(reply), "failures cost nothing"
    [reply] = await bot.ask(alice, chat, "/sentiment again")
    assert REFUSAL.match(reply)
    [reply] = await bot.ask(alice, chat, "/sentiment and again")
    assert REFUSAL.match(reply), "a refusal does not count either, and does not lift the quota"


async def test_the_bots_admins_are_exempt(bot: RunningBot) -> None:
    admin = bot.person("Admin")
    bot.services.settings.admin_ids.append(admin.id)
    chat = bot.emu.private_chat(admin)
    for n in range(QUOTA + 2):
        [reply] = await bot.ask(admin, chat, f"/sentiment fine {n}")
        assert answered(reply)
    [view] = await bot.ask(admin, chat, "/settings sentiment")
    assert "Requests left today" not in view


async def test_settings_show_the_requests_left_today(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    [view] = await bot.ask(alice, chat, "/settings sentiment")
    assert "Requests left today: 2 of 2" in view
    await bot.ask(alice, chat, "/sentiment fine")
    [view] = await bot.ask(alice, chat, "/settings sentiment")
    assert "Requests left today: 1 of 2" in view
    await bot.ask(alice, chat, "/sentiment fine")
    [view] = await bot.ask(alice, chat, "/settings")
    assert "Requests left today: 0 of 2" in view


async def test_group_admins_set_the_groups_quota_and_members_cannot(bot: RunningBot) -> None:
    admin, bob = bot.person("Admin"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)
    [reply] = await bot.ask(bob, group, "/groupquota")
    assert reply == "This group has no daily quota of its own."
    [reply] = await bot.ask(bob, group, "/groupquota 5")
    assert reply == "Only this group's admins can change its defaults."
    [reply] = await bot.ask(admin, group, "/groupquota lots")
    assert reply.startswith("Usage: /groupquota <requests a day> (1 to 1000000)")
    [reply] = await bot.ask(admin, group, "/groupquota 1")
    assert reply == "Each member of this group may now make 1 requests a day here."
    [reply] = await bot.ask(bob, group, "/groupquota")
    assert reply == (
        "Each member of this group may make 1 requests a day here (counts reset at 00:00 UTC)."
    )
    [reply] = await bot.ask(bob, bot.emu.private_chat(bob), "/groupquota 3")
    assert reply == "This command works in groups only."

    [reply] = await bot.ask(bob, group, "/sentiment fine")
    assert answered(reply)
    [view] = await bot.ask(bob, group, "/settings sentiment")
    assert "Requests left today: 0 of 1" in view
    [reply] = await bot.ask(bob, group, "/sentiment again")
    assert re.fullmatch(
        r"You've used the 1 requests a day this group allows each member\. "
        r"The quota resets at 00:00 UTC, in \d+ h \d+ min\.",
        reply,
    )
    [reply] = await bot.ask(bob, bot.emu.private_chat(bob), "/sentiment fine")
    assert answered(reply), "the group's quota counts requests in that group only"
    [view] = await bot.ask(bob, bot.emu.private_chat(bob), "/settings sentiment")
    assert "Requests left today: 0 of 2" in view, "the bot-wide quota counts every chat"

    [reply] = await bot.ask(admin, group, "/groupquota off")
    assert reply == "This group's daily quota is off."
    [reply] = await bot.ask(bob, group, "/sentiment still")
    assert REFUSAL.match(reply), "without the group's quota the bot-wide one still binds"


async def test_in_a_group_the_smaller_quota_binds(bot: RunningBot) -> None:
    admin, carol = bot.person("Admin"), bot.person("Carol")
    group = bot.emu.create_chat("supergroup", "Readers", creator=admin)
    await bot.ask(admin, group, "/groupquota 50")
    for _ in range(QUOTA):
        [reply] = await bot.ask(carol, group, "/sentiment fine")
        assert answered(reply)
    [view] = await bot.ask(carol, group, "/settings sentiment")
    assert "Requests left today: 0 of 2" in view
    [reply] = await bot.ask(carol, group, "/sentiment again")
    assert REFUSAL.match(reply)


async def test_a_database_that_is_down_never_blocks_a_request(
    bot: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    for _ in range(QUOTA):
        await bot.ask(alice, chat, "/sentiment fine")
    [reply] = await bot.ask(alice, chat, "/sentiment over")
    assert REFUSAL.match(reply)
    bot.break_database()
    with caplog.at_level(logging.WARNING, logger="handlers.request.quota"):
        [reply] = await bot.ask(alice, chat, "/sentiment the database is gone")
    assert answered(reply), "the quota fails open"
    assert "I can't reach my settings right now, so I used the defaults." in reply
    assert any("daily quota" in record.getMessage() for record in caplog.records)
    [view] = await bot.ask(alice, chat, "/settings sentiment")
    assert "Requests left today" not in view


async def test_posting_as_ones_own_channels_shares_one_quota_per_group(bot: RunningBot) -> None:
    """Telegram hides who posts as a channel, so the quota cannot follow the person; it must
    not follow each channel either, or ten channels would be ten quotas."""
    alice, bob = bot.person("Alice"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=bob)
    channels = [bot.emu.create_chat("channel", f"Alice {n}", creator=alice) for n in range(3)]
    replies = [
        (await bot.ask(alice, group, f"/sentiment fine {n}", as_chat=channel))[0]
        for n, channel in enumerate(channels)
    ]
    assert [answered(reply) for reply in replies] == [True, True, False]
    assert REFUSAL.match(replies[-1])
    [own] = await bot.ask(alice, group, "/sentiment as myself")
    assert answered(own), "Alice's own quota is hers"
    [anonymous] = await bot.ask(bob, group, "/sentiment as the group", as_chat=group)
    assert REFUSAL.match(anonymous), "shared by everyone who posts here as a chat"
    other = bot.emu.create_chat("supergroup", "Elsewhere", creator=bob)
    [elsewhere] = await bot.ask(alice, other, "/sentiment fine", as_chat=channels[0])
    assert answered(elsewhere), "another chat's is another quota"


async def test_a_stream_stopped_after_it_showed_text_counts(bot: RunningBot) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "/set stream edit")
    await bot.ask(alice, chat, "/set generate max_new_tokens 200")
    model_id = bot.settings.default_models["generate"]
    async with bot.services.pool.lease("text-generation", model_id) as runner:
        eos = runner.tokenizer.eos_token_id

        def slow_and_endless(module: object, args: object, output: Any) -> None:
            time.sleep(0.02)
            output.logits[..., eos] = float("-inf")

        runner.model.register_forward_hook(slow_and_endless)
    bot.emu.send_message(alice, chat, "/generate Once upon a time")
    [shown] = await bot.emu.wait_for("editMessageText", timeout=60)
    bot.emu.press_button(alice, shown.result, f"stop:{alice.id}")
    await bot.emu.wait_for(
        "editMessageText", lambda c: "(stopped)" in c.params.get("text", ""), timeout=60
    )
    await bot.settle()
    [view] = await bot.ask(alice, chat, "/settings generate")
    assert "Requests left today: 1 of 2" in view, "the text it showed was work done"


async def test_a_command_refused_after_its_voice_note_was_transcribed_counts(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    voice = bot.emu.send_voice(alice, chat, sound_bytes(), duration=1)
    heard = bot.services.pool.metrics.requests
    [refused] = await bot.ask(alice, chat, "/fill", reply_to=voice["message_id"])
    assert bot.services.pool.metrics.requests == heard + 1, "the voice note was transcribed"
    assert not answered(refused)
    [view] = await bot.ask(alice, chat, "/settings fill")
    assert "Requests left today: 1 of 2" in view, "the transcription was work done"


async def test_asking_a_conversation_answer_again_counts_against_the_quota(
    bot: RunningBot,
) -> None:
    alice = bot.person("Alice")
    chat = bot.emu.private_chat(alice)
    await bot.ask(alice, chat, "Tell me a joke.")
    [again] = await bot.ask(alice, chat, "/retry")
    [refused] = await bot.ask(alice, chat, "/retry")

    assert again and not REFUSAL.match(again)
    assert REFUSAL.match(refused), "a retry is a turn like any other"
