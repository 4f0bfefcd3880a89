"""The Bot API emulator, driven by the real PTB Bot and Application over HTTP.

Other end-to-end tests trust the emulator to behave like Telegram, so these tests pin
the behaviour the bot relies on: delivery in both modes, entities, and Telegram's errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from telegram import (
    Bot,
    BotCommand,
    BotCommandScopeAllGroupChats,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InputTextMessageContent,
    MessageEntity,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.offline.emulator import BotApiEmulator, FloodLimits, RateWindow
from bot.offline.emulator.methods import MAX_PHOTO_BYTES, MAX_UPLOAD_BYTES, UploadedFile
from bot.offline.emulator.world import ApiError
from bot.offline.media_samples import image_bytes


@pytest.fixture
async def emu() -> AsyncIterator[BotApiEmulator]:
    async with BotApiEmulator() as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: BotApiEmulator) -> AsyncIterator[Bot]:
    async with Bot(emu.token, base_url=emu.base_url, base_file_url=emu.base_file_url) as client:
        yield client


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with the command's arguments, or with the text for plain messages."""
    message = update.effective_message
    assert message is not None and message.text is not None
    await message.reply_text(" ".join(context.args) if context.args else message.text)


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer two buttons."""
    assert update.effective_message is not None
    keyboard = [[InlineKeyboardButton("Yes", callback_data="yes")]]
    keyboard.append([InlineKeyboardButton("No", callback_data="no")])
    await update.effective_message.reply_text(
        "Pick one", reply_markup=InlineKeyboardMarkup(keyboard)
    )


async def picked(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Acknowledge the tap and replace the menu with the choice."""
    query = update.callback_query
    assert query is not None
    await query.answer("noted")
    await query.edit_message_text(f"You picked <b>{query.data}</b>", parse_mode=ParseMode.HTML)


async def answer_inline(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Offer the query back as one article."""
    query = update.inline_query
    assert query is not None
    content = InputTextMessageContent(f"<i>{query.query}</i>", parse_mode=ParseMode.HTML)
    like = InlineKeyboardMarkup([[InlineKeyboardButton("Like", callback_data="like")]])
    await query.answer([InlineQueryResultArticle("r1", "Echo", content, reply_markup=like)])


def echo_handlers() -> list[BaseHandler[Update, ContextTypes.DEFAULT_TYPE, None]]:
    return [
        CommandHandler("echo", echo),
        CommandHandler("menu", menu),
        CallbackQueryHandler(picked),
        InlineQueryHandler(answer_inline),
        MessageHandler(filters.TEXT & ~filters.COMMAND, echo),
    ]


def build_app(emu: BotApiEmulator, *, updater: bool = True) -> Application:
    builder = emu.wire(ApplicationBuilder())
    if not updater:
        builder = builder.updater(None)
    app = builder.build()
    app.add_handlers(echo_handlers())
    return app


@asynccontextmanager
async def polling(emu: BotApiEmulator) -> AsyncIterator[Application]:
    app = build_app(emu)
    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling()
        yield app
        await app.updater.stop()
        await app.stop()


def texts(messages: Sequence[dict]) -> list[str]:
    return [message["text"] for message in messages]


async def test_get_me_reports_the_emulated_bot_identity(bot: Bot, emu: BotApiEmulator) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.is_bot) == (emu.bot_user.id, "hfbot_test_bot", True)
    assert me.can_join_groups and me.supports_inline_queries
    assert emu.calls[0].method == "getMe"


async def test_private_command_reaches_command_handler_and_reply_is_recorded(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice", "alice")
    chat = emu.private_chat(alice)
    async with polling(emu):
        sent = emu.send_message(alice, chat, "/echo hello there")
        [call] = await emu.wait_for("sendMessage")
    assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]
    assert call.params["text"] == "hello there"
    assert emu.last_reply(chat.id) == call.result


async def test_group_command_addressed_to_the_bot_by_name_reaches_the_handler_in_privacy_mode(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    group = emu.create_chat("supergroup", "Readers", creator=alice)
    async with polling(emu):
        emu.send_message(alice, group, "chatter the bot never sees in privacy mode")
        emu.send_message(alice, group, "/echo@other_bot not for us")
        sent = emu.send_message(alice, group, "/echo@hfbot_test_bot for us")
        [call] = await emu.wait_for("sendMessage")
        emu.make_admin(group, emu.bot_user)
        emu.send_message(alice, group, "an admin bot sees everything")
        await emu.wait_for("sendMessage")
    assert sent["entities"][0]["length"] == len("/echo@hfbot_test_bot")
    assert call.params["text"] == "for us"
    assert texts(emu.sent_messages(group.id)) == ["for us", "an admin bot sees everything"]


async def test_person_replying_to_the_bot_is_delivered_with_the_replied_message(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    group = emu.create_chat("group", "Readers")
    async with polling(emu):
        emu.send_message(alice, group, "/echo first")
        await emu.wait_for("sendMessage")
        bot_message = emu.last_reply(group.id)
        assert bot_message is not None
        reply = emu.send_message(alice, group, "answering you", reply_to=bot_message)
        [call] = await emu.wait_for("sendMessage")
    assert reply["reply_to_message"]["from"]["id"] == emu.bot_user.id
    assert call.params["text"] == "answering you"


async def test_pressing_a_button_delivers_a_callback_and_the_edit_returns_the_message(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    async with polling(emu):
        emu.send_message(alice, chat, "/menu")
        await emu.wait_for("sendMessage")
        menu_message = emu.last_reply(chat.id)
        assert menu_message is not None
        with pytest.raises(ValueError, match="no button"):
            emu.press_button(alice, menu_message, "maybe")
        query = emu.press_button(alice, menu_message, "yes")
        [answer] = await emu.wait_for("answerCallbackQuery")
        [edit] = await emu.wait_for("editMessageText")
    assert answer.params == {"callback_query_id": query["id"], "text": "noted"}
    assert edit.error is None and edit.result["text"] == "You picked yes"
    assert edit.result["entities"] == [{"type": "bold", "offset": 11, "length": 3}]
    assert "reply_markup" not in edit.result
    assert emu.edits(chat.id, menu_message["message_id"]) == ["Pick one", "You picked yes"]


async def test_inline_query_answer_is_recorded_and_a_chosen_result_is_posted_via_the_bot(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    async with polling(emu):
        query = emu.inline_query(alice, "bonjour")
        await emu.wait_for("answerInlineQuery")
        answer = emu.inline_answer(query)
        assert answer is not None and answer["results"][0]["id"] == "r1"
        posted = emu.choose_inline_result(alice, query, "r1", chat)
        tap = emu.press_button(alice, posted, "like")
        [edit] = await emu.wait_for("editMessageText")
    assert posted["text"] == "bonjour" and posted["via_bot"]["id"] == emu.bot_user.id
    assert posted["entities"] == [{"type": "italic", "offset": 0, "length": 7}]
    assert "message" not in tap and edit.params["inline_message_id"] == tap["inline_message_id"]
    assert edit.result is True
    edited = emu.world.message(chat.id, posted["message_id"])
    assert edited is not None and edited["text"] == "You picked like"


@pytest.mark.parametrize(
    ("html", "reason"),
    [
        ("<b>unclosed", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>crossed <i>tags</b></i>", 'expected "</i>", found "</b>"'),
        ("<div>block</div>", 'Unsupported start tag "div"'),
        ("1 < 2", "Unsupported start tag"),
        ('<span class="red">x</span>', 'must have class "tg-spoiler"'),
    ],
)
async def test_invalid_html_is_refused_with_telegrams_parse_error(
    bot: Bot, emu: BotApiEmulator, html: str, reason: str
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    with pytest.raises(BadRequest, match="Can't parse entities") as error:
        await bot.send_message(chat.id, html, parse_mode=ParseMode.HTML)
    assert reason.lower() in error.value.message.lower()
    assert emu.sent_messages(chat.id) == []


async def test_valid_html_comes_back_as_plain_text_with_entities(
    bot: Bot, emu: BotApiEmulator
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    html = (
        '<b>bold</b> <a href="https://hf.co">link</a> <tg-spoiler>s</tg-spoiler> '
        '<pre><code class="language-python">x = 1</code></pre> &lt;tag&gt; 🤗'
        "<blockquote expandable>quote</blockquote>"
    )
    message = await bot.send_message(chat.id, html, parse_mode=ParseMode.HTML)
    assert message.text == "bold link s x = 1 <tag> 🤗quote"
    assert [entity.type for entity in message.entities] == [
        MessageEntity.BOLD,
        MessageEntity.TEXT_LINK,
        MessageEntity.SPOILER,
        MessageEntity.PRE,
        MessageEntity.EXPANDABLE_BLOCKQUOTE,
    ]
    assert message.entities[3].language == "python"
    assert message.parse_entity(message.entities[4]) == "quote"


async def test_text_over_4096_characters_or_empty_is_refused(bot: Bot, emu: BotApiEmulator) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    await bot.send_message(chat.id, "x" * 4096)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(chat.id, "x" * 4097)
    with pytest.raises(BadRequest, match="Message text is empty"):
        await bot.send_message(chat.id, "<b> </b>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.edit_message_text("y" * 4097, chat.id, 1)


async def test_editing_to_the_same_text_and_markup_is_not_modified(
    bot: Bot, emu: BotApiEmulator
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Again", callback_data="again")]])
    sent = await bot.send_message(chat.id, "<b>42</b>", parse_mode="HTML", reply_markup=markup)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text(
            "<b>42</b>", chat.id, sent.message_id, parse_mode="HTML", reply_markup=markup
        )
    edited = await bot.edit_message_text("<b>42</b>", chat.id, sent.message_id, parse_mode="HTML")
    assert edited.reply_markup is None and edited.edit_date is not None
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_reply_markup(chat.id, sent.message_id)
    assert emu.edits(chat.id, sent.message_id) == ["42", "42"]


async def test_files_from_people_and_uploads_from_the_bot_can_be_downloaded(
    bot: Bot, emu: BotApiEmulator
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    photo = emu.send_photo(alice, chat, b"\xff\xd8 fake jpeg", caption="/caption me")
    voice = emu.send_voice(alice, chat, b"OggS fake opus", duration=3)
    for file_id, payload in [
        (photo["photo"][-1]["file_id"], b"\xff\xd8 fake jpeg"),
        (voice["voice"]["file_id"], b"OggS fake opus"),
    ]:
        file = await bot.get_file(file_id)
        assert file.file_path is not None and file.file_path.startswith(emu.base_file_url)
        assert bytes(await file.download_as_bytearray()) == payload
    document = emu.send_document(alice, chat, b"%PDF", file_name="a.pdf", mime_type="x/pdf")
    assert document["document"]["file_name"] == "a.pdf"
    photo_back = await bot.send_photo(
        chat.id, image_bytes(image_format="PNG"), caption="<b>done</b>", parse_mode="HTML"
    )
    assert photo_back.caption == "done" and photo_back.caption_entities[0].type == "bold"
    assert (photo_back.photo[-1].width, photo_back.photo[-1].height) == (64, 48)
    uploaded = await bot.send_document(chat.id, b"report body", filename="report.txt")
    assert uploaded.document is not None and uploaded.document.file_name == "report.txt"
    file = await bot.get_file(uploaded.document.file_id)
    assert bytes(await file.download_as_bytearray()) == b"report body"
    [call] = await emu.wait_for("sendDocument")
    assert call.params["document"].data == b"report body"
    with pytest.raises(BadRequest, match="Invalid file_id"):
        await bot.get_file("no-such-file")


async def test_photos_past_telegrams_limits_are_refused_with_its_errors(
    bot: Bot, emu: BotApiEmulator
) -> None:
    """sendPhoto takes at most 10 MB, sides summing to 10,000 px, a ratio of at most 20."""
    chat = emu.private_chat(emu.create_user("Alice"))
    with pytest.raises(BadRequest, match=r"(?i)photo_save_file_invalid"):
        await bot.send_photo(chat.id, b"\x89PNG" + bytes(MAX_PHOTO_BYTES))
    for sides in [(9000, 1001), (2100, 100)]:
        with pytest.raises(BadRequest, match=r"(?i)photo_invalid_dimensions"):
            await bot.send_photo(chat.id, png_of(sides))
    with pytest.raises(BadRequest, match=r"(?i)image_process_failed"):
        await bot.send_photo(chat.id, b"no picture at all")
    sent = await bot.send_photo(chat.id, png_of((9000, 1000)))
    assert (sent.photo[-1].width, sent.photo[-1].height) == (9000, 1000)


async def test_a_voice_note_from_the_bot_arrives_with_its_duration_and_caption(
    bot: Bot, emu: BotApiEmulator
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    sent = await bot.send_voice(chat.id, b"OggS opus", duration=3, caption="<i>hi</i>", parse_mode="HTML")
    assert sent.voice is not None and sent.voice.duration in (3, dt.timedelta(seconds=3))
    assert sent.caption == "hi"
    file = await bot.get_file(sent.voice.file_id)
    assert bytes(await file.download_as_bytearray()) == b"OggS opus"


async def test_uploads_over_50_mb_are_refused_as_too_large(emu: BotApiEmulator) -> None:
    """Past the Bot API's 50 MB for voice notes and files the server answers 413 (checked on
    the emulator's methods directly: 50 MB through HTTP would only slow the test)."""
    chat = emu.private_chat(emu.create_user("Alice"))
    big = UploadedFile("voice.ogg", "audio/ogg", bytes(MAX_UPLOAD_BYTES + 1))
    for method, field in [(emu.api.send_voice, "voice"), (emu.api.send_document, "document")]:
        with pytest.raises(ApiError) as refused:
            method({"chat_id": chat.id, field: big})
        assert refused.value.code == 413


def png_of(sides: tuple[int, int]) -> bytes:
    """A one-bit PNG of these sides: a few KB however large it is."""
    out = io.BytesIO()
    Image.new("1", sides).save(out, format="PNG", optimize=True)
    return out.getvalue()


async def test_flood_control_answers_429_with_retry_after_once_enabled(
    bot: Bot, emu: BotApiEmulator
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    group = emu.create_chat("group", "Readers")
    await bot.send_message(chat.id, "one")
    await bot.send_message(chat.id, "two, still fine while flood control is off")
    emu.flood.limits = FloodLimits(group=RateWindow(2, 60.0))
    now = [1000.0]
    emu.flood.clock = lambda: now[0]
    emu.flood.enabled = True
    await bot.send_message(chat.id, "first this second")
    with pytest.raises(RetryAfter) as error:
        await bot.send_message(chat.id, "too soon")
    assert error.value.retry_after in (1, dt.timedelta(seconds=1))
    await bot.send_message(group.id, "1")
    with pytest.raises(RetryAfter):
        await bot.send_message(group.id, "one a second in a group too")
    now[0] += 1.0
    await bot.send_message(group.id, "2")
    now[0] += 1.0
    with pytest.raises(RetryAfter):
        await bot.send_message(group.id, "3: over the group's two a minute")
    assert emu.flood.served == 3
    assert [call.error for call in emu.calls if call.error] == [
        "Too Many Requests: retry after 1",
        "Too Many Requests: retry after 1",
        "Too Many Requests: retry after 58",
    ]


async def test_a_round_trip_delay_counts_each_call_when_it_arrives_halfway(
    bot: Bot, emu: BotApiEmulator
) -> None:
    chat = emu.private_chat(emu.create_user("Alice"))
    emu.round_trip_s = 0.3
    left = time.monotonic()
    await bot.send_message(chat.id, "far away")
    answered = time.monotonic()
    arrived = emu.calls[-1].at
    assert answered - left >= 0.3
    assert arrived - left >= 0.15 and answered - arrived >= 0.15


async def test_updates_queued_before_polling_starts_are_all_delivered(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    for word in ("one", "two", "three"):
        emu.send_message(alice, chat, word)
    assert emu.pending_updates == 3
    async with polling(emu):
        await emu.wait_for("sendMessage", count=3)
    assert texts(emu.sent_messages(chat.id)) == ["one", "two", "three"]
    assert emu.pending_updates == 0


async def test_get_updates_honours_offset_limit_and_allowed_updates(
    bot: Bot, emu: BotApiEmulator
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    for word in ("a", "b", "c"):
        emu.send_message(alice, chat, word)
    first_two = await bot.get_updates(limit=2)
    assert [u.message.text for u in first_two if u.message] == ["a", "b"]
    rest = await bot.get_updates(offset=first_two[-1].update_id + 1)
    assert [u.message.text for u in rest if u.message] == ["c"]
    await bot.get_updates(offset=rest[-1].update_id + 1, allowed_updates=["callback_query"])
    emu.send_message(alice, chat, "filtered out")
    assert await bot.get_updates(timeout=0) == ()


async def test_long_poll_returns_as_soon_as_an_update_is_queued(
    bot: Bot, emu: BotApiEmulator
) -> None:
    alice = emu.create_user("Alice")
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await emu.wait_until(lambda: emu.long_polls_waiting == 1)
    started = time.monotonic()
    emu.send_message(alice, emu.private_chat(alice), "wake up")
    updates = await asyncio.wait_for(poll, timeout=5)
    assert [u.message.text for u in updates if u.message] == ["wake up"]
    assert time.monotonic() - started < 2


@asynccontextmanager
async def webhook_receiver(
    app: Application, secret: str
) -> AsyncIterator[tuple[str, list[str | None]]]:
    """PTB's custom-webhook pattern: check the secret, put the Update on the queue."""
    secrets_seen: list[str | None] = []

    async def receive(request: web.Request) -> web.Response:
        secrets_seen.append(request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        if secrets_seen[-1] != secret:
            return web.Response(status=403)
        await app.update_queue.put(Update.de_json(await request.json(), app.bot))
        return web.Response()

    server = web.Application()
    server.router.add_post("/telegram", receive)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/telegram", secrets_seen
    finally:
        await runner.cleanup()


async def test_webhook_mode_posts_updates_with_the_secret_token_header(
    emu: BotApiEmulator,
) -> None:
    alice = emu.create_user("Alice")
    chat = emu.private_chat(alice)
    emu.send_message(alice, chat, "/echo queued before the webhook")
    app = build_app(emu, updater=False)
    async with app, webhook_receiver(app, "s3cret") as (url, secrets_seen):
        await app.start()
        await app.bot.set_webhook(url, secret_token="s3cret")
        emu.send_message(alice, chat, "/echo after")
        await emu.wait_for("sendMessage", count=2, since=0)
        info = await app.bot.get_webhook_info()
        with pytest.raises(Conflict, match="webhook is active"):
            await app.bot.get_updates()
        await app.stop()
    assert secrets_seen == ["s3cret", "s3cret"]
    assert info.url == url and info.pending_update_count == 0
    assert texts(emu.sent_messages(chat.id)) == ["queued before the webhook", "after"]


async def test_updates_survive_an_unreachable_webhook_until_polled(
    bot: Bot, emu: BotApiEmulator
) -> None:
    alice = emu.create_user("Alice")
    with_nobody_listening = web.AppRunner(web.Application())
    await with_nobody_listening.setup()
    site = web.TCPSite(with_nobody_listening, "127.0.0.1", 0)
    await site.start()
    host, port = with_nobody_listening.addresses[0][:2]
    await with_nobody_listening.cleanup()
    await bot.set_webhook(f"http://{host}:{port}/gone")
    emu.send_message(alice, emu.private_chat(alice), "kept")
    await emu.wait_until(lambda: emu.webhook_error is not None)
    info = await bot.get_webhook_info()
    assert info.pending_update_count == 1
    assert info.last_error_message is not None
    await bot.delete_webhook()
    updates = await bot.get_updates()
    assert [u.message.text for u in updates if u.message] == ["kept"]


async def test_unknown_method_and_wrong_token_answer_like_telegram(emu: BotApiEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emu.base_url}{emu.token}/sendTelepathy", json={}) as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        async with session.get(f"{emu.base_url}123:wrong/getMe") as response:
            assert response.status == 401


async def test_commands_are_stored_per_scope_and_language(bot: Bot, emu: BotApiEmulator) -> None:
    await bot.set_my_commands([BotCommand("sentiment", "Classify a text")])
    await bot.set_my_commands(
        [BotCommand("generate", "Continue a text")],
        scope=BotCommandScopeAllGroupChats(),
        language_code="fr",
    )
    assert [c.command for c in await bot.get_my_commands()] == ["sentiment"]
    groups_fr = await bot.get_my_commands(BotCommandScopeAllGroupChats(), "fr")
    assert [c.command for c in groups_fr] == ["generate"]
    assert emu.commands({"type": "all_group_chats"}, "fr")[0]["command"] == "generate"
    await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([BotCommand("Not-Valid", "x")])


async def test_chat_member_status_follows_the_chats_configured_admins(
    bot: Bot, emu: BotApiEmulator
) -> None:
    owner, admin, member = (emu.create_user(name) for name in ("Olga", "Adam", "Mia"))
    group = emu.create_chat("supergroup", "Readers", creator=owner, admins=(admin,))
    statuses = [(await bot.get_chat_member(group.id, u.id)).status for u in (owner, admin, member)]
    assert statuses == ["creator", "administrator", "member"]
    emu.make_admin(group, member)
    admins = await bot.get_chat_administrators(group.id)
    assert {a.user.id for a in admins} == {owner.id, admin.id, member.id}
    full = await bot.get_chat(group.id)
    assert (full.id, full.type, full.title) == (group.id, "supergroup", "Readers")


async def test_wait_for_times_out_with_what_the_bot_did_instead(emu: BotApiEmulator) -> None:
    with pytest.raises(TimeoutError, match="the bot called nothing"):
        await emu.wait_for("sendMessage", timeout=0.05)


async def test_channel_posts_arrive_as_channel_post_updates(bot: Bot, emu: BotApiEmulator) -> None:
    channel = emu.create_chat("channel", "News", username="hf_news")
    emu.channel_post(channel, "/sentiment great news")
    [update] = await bot.get_updates()
    assert update.channel_post is not None and update.channel_post.sender_chat is not None
    assert update.channel_post.sender_chat.id == channel.id
    sent = await bot.send_message("@hf_news", "posted by the bot")
    assert sent.chat.id == channel.id
    assert sent.sender_chat is not None and sent.sender_chat.id == channel.id
    assert sent.from_user is None, "messages in a channel name no sender but the channel"


async def test_setting_a_webhook_can_drop_pending_updates(bot: Bot, emu: BotApiEmulator) -> None:
    alice = emu.create_user("Alice")
    emu.send_message(alice, emu.private_chat(alice), "stale")
    await bot.set_webhook("http://127.0.0.1:9/unused", drop_pending_updates=True)
    assert emu.pending_updates == 0
    await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""


async def test_a_bot_that_leaves_a_group_neither_sees_nor_speaks_there(
    bot: Bot, emu: BotApiEmulator
) -> None:
    alice = emu.create_user("Alice")
    group = emu.create_chat("group", "Readers", creator=alice)
    channel = emu.create_chat("channel", "News")
    assert await bot.leave_chat(group.id) is True
    assert await bot.leave_chat(channel.id) is True
    assert not emu.bot_is_member(group)

    emu.send_message(alice, group, "/echo anyone?")
    emu.channel_post(channel, "/echo news")
    assert emu.pending_updates == 0
    with pytest.raises(Forbidden, match="bot is not a member of the group chat"):
        await bot.send_message(group.id, "hello?")
    with pytest.raises(Forbidden, match="bot is not a member of the channel chat"):
        await bot.leave_chat(channel.id)
    with pytest.raises(BadRequest, match="can't be changed in private chats"):
        await bot.leave_chat(emu.private_chat(alice).id)
