"""Who may use a private bot, through the real stack: lists, /grant, /revoke, invites, groups."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select, update

from bot.offline.emulator import BotApiEmulator
from bot.offline.emulator.world import FakeChat, FakeUser
from bot.offline.media_samples import image_bytes, sound_bytes
from models.access import InviteCode
from models.database import create_engine
from models.inbox import InboxUpdate
from tests.support.harness import RunningBot, bot_settings, running_bot

PRIVATE = "This bot is private. If someone gave you an invite link, open it to start."
CHAT_PRIVATE = (
    "This bot is private and does not serve this chat, so I'm leaving. "
    "Ask the bot's operator to allow this chat."
)
INVALID_INVITE = (
    "This invite link doesn't work: it was used up, it expired, or it never existed. "
    "Ask for a new one."
)


def messages_in(bot: RunningBot, chat: FakeChat) -> list[str]:
    """Every text or caption the bot has posted in `chat`, in order."""
    return [
        message.get("text") or message.get("caption") or ""
        for message in bot.emu.sent_messages(chat.id)
    ]


def admin_of(bot: RunningBot) -> FakeUser:
    admin = bot.person("Admin")
    bot.services.settings.admin_ids.append(admin.id)
    return admin


async def invite_code(bot: RunningBot, admin: FakeUser, args: str = "") -> str:
    [reply] = await bot.ask(admin, bot.emu.private_chat(admin), f"/invite {args}".strip())
    found = re.search(r"https://t\.me/hfbot_test_bot\?start=([A-Za-z0-9_-]+)", reply)
    assert found is not None, reply
    return found.group(1)


async def test_an_outsider_is_told_once_that_the_bot_is_private_and_then_ignored(
    bot: RunningBot,
) -> None:
    alice, mallory = bot.person("Alice"), bot.person("Mallory")
    bot.services.settings.allowed_users.append(alice.id)
    [answer] = await bot.ask(alice, bot.emu.private_chat(alice), "/sentiment Lovely")
    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE")

    chat = bot.emu.private_chat(mallory)
    [refused] = await bot.ask(mallory, chat, "/sentiment Let me in")
    assert refused == PRIVATE

    # Everything else Mallory tries today meets silence: text, commands, photos, voice notes.
    bot.emu.send_message(mallory, chat, "just chatting")
    bot.emu.send_message(mallory, chat, "/generate Once upon")
    bot.emu.send_photo(mallory, chat, image_bytes(), caption="/whatis")
    bot.emu.send_voice(mallory, chat, sound_bytes())
    # A button: answered (Telegram waits for that) but with no text; an inline query: no results.
    [menu] = bot.emu.sent_messages(chat.id)
    bot.emu.press_button(mallory, menu, f"cfg:{mallory.id}:view:generate", forged=True)
    inline = bot.emu.inline_query(mallory, "Lovely day")
    [button] = await bot.emu.wait_for("answerCallbackQuery", timeout=30)
    await bot.settle()

    assert messages_in(bot, chat) == [PRIVATE]
    assert "text" not in button.params
    answer_to_inline = bot.emu.inline_answer(inline)
    assert answer_to_inline is not None and answer_to_inline["results"] == []
    assert not [c for c in bot.emu.calls if c.method == "getFile"], "nothing was downloaded"
    refusals = bot.services.metrics.access_refusals.labels("user")._value.get()
    assert refusals == 7


async def test_an_invite_code_lets_one_newcomer_in_once_and_not_twice(bot: RunningBot) -> None:
    admin, bob, carol = admin_of(bot), bot.person("Bob"), bot.person("Carol")
    code = await invite_code(bot, admin)

    [welcome] = await bot.ask(bob, bot.emu.private_chat(bob), f"/start {code}")
    assert welcome.startswith("Your invite worked: welcome! You can use me now.\n\nHi Bob!")
    [answer] = await bot.ask(bob, bot.emu.private_chat(bob), "/sentiment Lovely")
    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE")

    [used_up] = await bot.ask(carol, bot.emu.private_chat(carol), f"/start {code}")
    assert used_up == INVALID_INVITE
    [refused] = await bot.ask(carol, bot.emu.private_chat(carol), "/sentiment Me too?")
    assert refused == PRIVATE, "an invite code made the bot private"

    [again] = await bot.ask(bob, bot.emu.private_chat(bob), f"/start {code}")
    assert again.startswith("Hi Bob!"), "someone already in keeps the code's uses"


async def test_one_person_redeeming_a_shared_invite_many_times_at_once_uses_it_once(
    bot: RunningBot,
) -> None:
    admin, bob, carol = admin_of(bot), bot.person("Bob"), bot.person("Carol")
    code = await invite_code(bot, admin, "2")
    for _ in range(4):
        bot.emu.send_message(bob, bot.emu.private_chat(bob), f"/start {code}")
    await bot.settle()
    invite = await bot.services.store.access.get_invite(code)
    assert invite is not None and invite.uses == 1
    [welcome] = await bot.ask(carol, bot.emu.private_chat(carol), f"/start {code}")
    assert welcome.startswith("Your invite worked"), "the second use is still there for Carol"


async def test_an_invite_request_handled_again_after_a_crash_mints_no_second_code(
    tmp_path: Path, tiny_models_dir: Path
) -> None:
    settings = bot_settings(tmp_path, tiny_models_dir, admin_ids=[7])
    async with BotApiEmulator() as emu:
        admin = emu.create_user("Admin", user_id=7)
        chat = emu.private_chat(admin)
        async with running_bot(settings, emu=emu) as first:
            [reply] = await first.ask(admin, chat, "/invite 2")
        # The crash RELIABILITY.md names: the answer went out, its done mark never committed.
        engine = create_engine(settings.database_url)
        async with engine.begin() as connection:
            await connection.execute(update(InboxUpdate).values(done_at=None))
        since = len(emu.calls)
        async with running_bot(settings, emu=emu) as second:
            [again] = await emu.wait_for("sendMessage", since=since, timeout=30)
            async with second.services.store.database.session(read_only=True) as session:
                codes = (await session.execute(select(InviteCode.code))).scalars().all()
        await engine.dispose()
    assert again.result["text"] == reply, "the same link again"
    assert len(codes) == 1


async def test_an_invite_for_several_people_with_an_expiry_says_so(bot: RunningBot) -> None:
    admin = admin_of(bot)
    chat = bot.emu.private_chat(admin)
    [reply] = await bot.ask(admin, chat, "/invite 3 7d")
    assert reply.startswith("Invite link for 3 people, valid until 20")
    code = reply.rsplit("start=", 1)[1]
    invite = await bot.services.store.access.get_invite(code)
    assert invite is not None and (invite.max_uses, invite.uses) == (3, 0)
    [usage] = await bot.ask(admin, chat, "/invite 0")
    assert usage.startswith("Usage: /invite [uses] [expiry]")
    [usage] = await bot.ask(admin, chat, "/invite 2 soon")
    assert usage.startswith("Usage: /invite [uses] [expiry]")


async def test_a_revoked_user_is_refused_and_admins_cannot_be_revoked(bot: RunningBot) -> None:
    admin, bob = admin_of(bot), bot.person("Bob")
    admin_chat, bob_chat = bot.emu.private_chat(admin), bot.emu.private_chat(bob)
    [granted] = await bot.ask(admin, admin_chat, f"/grant {bob.id}")
    assert granted == f"User {bob.id} may use the bot now."
    [answer] = await bot.ask(bob, bob_chat, "/sentiment Lovely")
    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE")

    [revoked] = await bot.ask(admin, admin_chat, f"/revoke {bob.id}")
    assert revoked == f"User {bob.id} may no longer use the bot."
    [refused] = await bot.ask(bob, bob_chat, "/sentiment Still here?")
    assert refused == PRIVATE

    [kept] = await bot.ask(admin, admin_chat, f"/revoke {admin.id}")
    assert kept == (
        f"{admin.id} is one of the bot's admins (HFBOT_ADMIN_IDS), who may always use it."
    )
    [usage] = await bot.ask(admin, admin_chat, "/grant someone")
    assert usage.startswith("Usage: /grant <id>")


async def test_a_revoked_person_cannot_let_themselves_back_in_with_an_invite(
    bot: RunningBot,
) -> None:
    admin, bob = admin_of(bot), bot.person("Bob")
    bob_chat = bot.emu.private_chat(bob)
    code = await invite_code(bot, admin, "3")
    [welcome] = await bot.ask(bob, bob_chat, f"/start {code}")
    assert welcome.startswith("Your invite worked")
    await bot.ask(admin, bot.emu.private_chat(admin), f"/revoke {bob.id}")

    [refused] = await bot.ask(bob, bob_chat, f"/start {code}")
    assert refused == PRIVATE, "refused like any outsider, not let in by the invite"
    bot.emu.send_message(bob, bob_chat, f"/start {code}")
    bot.emu.send_message(bob, bob_chat, "/sentiment Back again?")
    await bot.settle()

    assert messages_in(bot, bob_chat)[-1] == PRIVATE, "told once, then ignored"
    assert await bot.services.store.access.decision(bob.id) is False
    invite = await bot.services.store.access.get_invite(code)
    assert invite is not None and invite.uses == 1, "the revoked person took no other use"


async def test_a_revocation_beats_the_operators_list(bot: RunningBot) -> None:
    admin, bob = admin_of(bot), bot.person("Bob")
    bot.services.settings.allowed_users.append(bob.id)
    await bot.ask(admin, bot.emu.private_chat(admin), f"/revoke {bob.id}")
    [refused] = await bot.ask(bob, bot.emu.private_chat(bob), "/sentiment Hello")
    assert refused == PRIVATE


async def test_only_the_bots_admins_grant_revoke_and_invite(bot: RunningBot) -> None:
    bob = bot.person("Bob")
    chat = bot.emu.private_chat(bob)
    for command in (f"/grant {bob.id}", f"/revoke {bob.id}", "/invite"):
        [refused] = await bot.ask(bob, chat, command)
        assert refused == "Only the bot's admins can do that."


async def test_a_group_that_is_not_allowed_is_told_once_and_left(bot: RunningBot) -> None:
    alice, carol = bot.person("Alice"), bot.person("Carol")
    bot.services.settings.allowed_users.append(alice.id)
    group = bot.emu.create_chat("supergroup", "Strangers", creator=carol)

    # Even an allowed person cannot bring the bot into a group that is not allowed.
    [refused] = await bot.ask(alice, group, "/sentiment Hello all")
    assert refused == CHAT_PRIVATE
    await bot.emu.wait_for("leaveChat", lambda call: call.params["chat_id"] == group.id)
    assert not bot.emu.bot_is_member(group)

    bot.emu.send_message(carol, group, "/sentiment Are you there?")
    assert bot.emu.pending_updates == 0, "Telegram delivers nothing from a chat the bot left"
    assert messages_in(bot, group) == [CHAT_PRIVATE]


async def test_messages_sent_as_a_chat_are_judged_as_that_chat(bot: RunningBot) -> None:
    alice, carol = bot.person("Alice"), bot.person("Carol")
    bot.services.settings.allowed_users.append(alice.id)
    allowed = bot.emu.create_chat("supergroup", "Readers", creator=carol)
    bot.services.settings.allowed_groups.append(allowed.id)
    [answer] = await bot.ask(carol, allowed, "/sentiment Lovely", as_chat=allowed)
    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE"), (
        "an anonymous admin of an allowed group"
    )

    other = bot.emu.create_chat("supergroup", "Elsewhere", creator=carol)
    [refused] = await bot.ask(carol, other, "/sentiment Lovely", as_chat=other)
    assert refused == CHAT_PRIVATE, "speaking as the group does not borrow anyone's access"
    await bot.emu.wait_for("leaveChat", lambda call: call.params["chat_id"] == other.id)


async def test_a_bot_admin_grants_the_group_they_are_in(bot: RunningBot) -> None:
    admin, carol, dave = admin_of(bot), bot.person("Carol"), bot.person("Dave")
    bot.services.settings.allowed_users.append(carol.id)
    group = bot.emu.create_chat("group", "Book club", creator=carol, admins=(admin,))
    [granted] = await bot.ask(admin, group, "/grant")
    assert granted == f"Chat {group.id} may use the bot now."
    [answer] = await bot.ask(dave, group, "/sentiment Lovely")
    assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE")

    [revoked] = await bot.ask(admin, group, "/revoke")
    assert revoked.startswith(f"Chat {group.id} may no longer use the bot")
    [left] = await bot.ask(dave, group, "/sentiment Again")
    assert left == CHAT_PRIVATE
    await bot.emu.wait_for("leaveChat", lambda call: call.params["chat_id"] == group.id)


async def test_a_private_bot_whose_database_is_down_says_it_cannot_check(bot: RunningBot) -> None:
    admin, mallory = admin_of(bot), bot.person("Mallory")
    await invite_code(bot, admin)
    bot.break_database()
    [reply] = await bot.ask(mallory, bot.emu.private_chat(mallory), "/sentiment Hello")
    assert reply == (
        "I can't check who may use me right now (my database is unreachable). "
        "Please try again later."
    )


async def test_grants_survive_a_restart(tmp_path: Path, tiny_models_dir: Path) -> None:
    settings = bot_settings(tmp_path, tiny_models_dir, admin_ids=[7])
    async with running_bot(settings) as first:
        admin = first.emu.create_user("Admin", user_id=7)
        first.emu.create_user("Bob", user_id=8)
        [granted] = await first.ask(admin, first.emu.private_chat(admin), "/grant 8")
        assert granted == "User 8 may use the bot now."
    async with running_bot(settings) as second:
        bob = second.emu.create_user("Bob", user_id=8)
        carol = second.emu.create_user("Carol", user_id=9)
        [answer] = await second.ask(bob, second.emu.private_chat(bob), "/sentiment Lovely")
        assert answer.splitlines()[0] in ("POSITIVE", "NEGATIVE")
        [refused] = await second.ask(carol, second.emu.private_chat(carol), "/sentiment Hi")
        assert refused == PRIVATE
