"""/stats as a picture: for the bot's admins everywhere, for a group's admins in their group."""

from __future__ import annotations

import io

from PIL import Image

from bot.offline.emulator.methods import UploadedFile
from bot.offline.emulator.world import FakeChat, FakeUser
from tests.support.harness import RunningBot


async def stats_photo(
    bot: RunningBot, who: FakeUser, chat: FakeChat, text: str
) -> tuple[str, Image.Image]:
    """Send `text`; the caption and the picture of the photo the bot answers with."""
    since = len(bot.emu.calls)
    sent = bot.emu.send_message(who, chat, text)
    [call] = await bot.emu.wait_for(
        "sendPhoto",
        lambda call: (
            (call.result or {}).get("reply_to_message", {}).get("message_id") == sent["message_id"]
        ),
        since=since,
        timeout=60,
    )
    upload = call.params["photo"]
    assert isinstance(upload, UploadedFile) and upload.content_type == "image/png"
    return call.result["caption"], Image.open(io.BytesIO(upload.data))


async def test_a_bot_admin_gets_a_chart_and_one_line_for_every_chat(bot: RunningBot) -> None:
    admin, alice = bot.person("Admin"), bot.person("Alice")
    bot.services.settings.admin_ids.append(admin.id)
    group = bot.emu.create_chat("supergroup", "Readers", creator=alice)
    await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment Lovely")
    await bot.ask(alice, group, "/sentiment Lovely too")
    await bot.settle()

    caption, picture = await stats_photo(bot, admin, bot.emu.private_chat(admin), "/stats")
    assert caption.startswith("Last 24h: 2 requests · 0 errors (0%) · p50 ")
    assert caption.endswith(" ms · 1 active users")
    assert picture.size == (1080, 1350)

    caption, _ = await stats_photo(bot, admin, bot.emu.private_chat(admin), "/stats 30d")
    assert caption.startswith("Last 30d: 2 requests")
    [usage] = await bot.ask(admin, bot.emu.private_chat(admin), "/stats 2w")
    assert usage == "Usage: /stats [24h|7d|30d]"


async def test_an_empty_period_still_answers_with_its_chart(bot: RunningBot) -> None:
    admin = bot.person("Admin")
    bot.services.settings.admin_ids.append(admin.id)
    caption, _ = await stats_photo(bot, admin, bot.emu.private_chat(admin), "/stats 7d")
    assert caption == "Last 7d: no requests."


async def test_a_group_admin_sees_their_groups_numbers_only(bot: RunningBot) -> None:
    owner, bob = bot.person("Owner"), bot.person("Bob")
    group = bot.emu.create_chat("supergroup", "Readers", creator=owner)
    await bot.ask(bob, group, "/sentiment Lovely")
    await bot.ask(bob, bot.emu.private_chat(bob), "/sentiment Elsewhere")
    await bot.ask(bob, bot.emu.private_chat(bob), "/sentiment And again")
    await bot.settle()

    caption, _ = await stats_photo(bot, owner, group, "/stats")
    assert caption.startswith("Last 24h: 1 requests"), "the two private requests are not shown"
    [refused] = await bot.ask(bob, group, "/stats")
    assert refused == "Only this group's admins can see its stats."


async def test_stats_are_refused_to_people_who_are_not_bot_admins(bot: RunningBot) -> None:
    mallory = bot.person("Mallory")
    [refused] = await bot.ask(mallory, bot.emu.private_chat(mallory), "/stats")
    assert refused == "Only the bot's admins can do that."
