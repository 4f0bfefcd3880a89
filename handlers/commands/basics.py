"""/start, /help, /cancel, the command menu, and the error handler of last resort."""

from __future__ import annotations

import logging

from telegram import (
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    Chat,
    Update,
)
from telegram.error import BadRequest

from bot.delivery.draft_stop import stopped_generation
from bot.errors import NothingToCancel, StoreUnavailable
from bot.i18n import CATALOGS, DEFAULT_LANGUAGE, pick_language, t
from bot.tasks import TASKS
from handlers.request.access_gate import redeem_invite
from handlers.request.context import BotApplication, BotContext
from handlers.request.parsing import parse_id
from handlers.request.turn import Turn, handle_errors

log = logging.getLogger(__name__)

MENU = (
    "start",
    "help",
    *TASKS,
    "new",
    "retry",
    "undo",
    "forget",
    "system",
    "settings",
    "model",
    "set",
    "reset",
    "models",
    "lang",
    "cancel",
)
GROUP_MENU = (*MENU, "groupmodel", "groupset", "groupsystem", "groupconversation", "groupquota")
GROUP_ADMIN_MENU = (*GROUP_MENU, "stats")
BOT_ADMIN_MENU = (*MENU, "stats", "grant", "revoke", "invite", "allow", "deny")


@handle_errors
async def start_command(turn: Turn) -> None:
    """/start: a greeting with two examples to try; `/start <code>` first redeems an invite."""
    welcome = [turn.t("access.welcome")] if await redeem_invite(turn) else []
    name = turn.user.first_name if turn.user else turn.chat.title
    await turn.reply("\n\n".join([*welcome, turn.t("start.text", name=name)]))


@handle_errors
async def help_command(turn: Turn) -> None:
    """/help: every command on one screen."""
    await turn.reply(turn.t("help.text"))


@handle_errors
async def unknown_command(turn: Turn) -> None:
    """A command this bot does not have: a one-line hint in private chats.

    In groups many bots share the chat, so only a command addressed to this bot
    by name (`/foo@thisbot`) gets the hint; anything else there is left alone.
    """
    command = (turn.message.text or "").split(maxsplit=1)[0]
    name, _, addressee = command.removeprefix("/").partition("@")
    ours = (turn.context.bot.username or "").lower()
    addressed_to_us = addressee.lower() == ours
    if (turn.chat.type == Chat.PRIVATE and (not addressee or addressed_to_us)) or addressed_to_us:
        await turn.reply(turn.t("hint.unknown_command", command=name))


@handle_errors
async def cancel_command(turn: Turn) -> None:
    """/cancel: stop this user's running requests (each one then says it stopped)."""
    if await turn.services.running.cancel(turn.owner_id) == 0:
        raise NothingToCancel()


async def track_update(update: Update, context: BotContext) -> None:
    """Count the update and note who and where; runs beside the handlers, never delaying them."""
    found = context.services
    found.metrics.updates.labels(_kind(update)).inc()
    try:
        if update.effective_user is not None:
            await found.store.preferences.touch_user(
                update.effective_user.id, update.effective_user.language_code
            )
        chat = update.effective_chat
        if chat is not None:
            await found.store.preferences.touch_chat(chat.id, chat.type, chat.title)
    except StoreUnavailable:
        log.debug("could not record user or chat: store unavailable")


def _kind(update: Update) -> str:
    for kind in ("message", "channel_post", "callback_query", "inline_query", "edited_message"):
        if getattr(update, kind) is not None:
            return kind
    return "other"


async def stop_button(update: Update, context: BotContext) -> None:
    """The Stop button under a streaming answer: its asker (or a bot admin) stops it."""
    query = update.callback_query
    assert query is not None and query.data is not None
    turn = await Turn.open(update, context)
    _, _, owner_text = query.data.partition(":")
    owner = parse_id(owner_text)
    if owner is None:
        await stale_button(update, context)
        return
    if turn.owner_id != owner and turn.owner_id not in turn.services.settings.admin_ids:
        await query.answer(turn.t("error.stop_not_yours"), show_alert=True)
        return
    await turn.services.running.cancel(owner)
    await query.answer(turn.t("stream.stopping"))


async def stopped_draft(update: Update, context: BotContext) -> None:
    """Telegram's own Stop on a draft (Bot API 10.3): stops its generation as the Stop button
    and /cancel do; the answer then keeps what was written, marked as stopped."""
    stopped = stopped_generation(update)
    owner = context.services.drafts.owner_of(stopped) if stopped is not None else None
    if owner is not None:
        await context.services.running.cancel(owner)


async def stale_button(update: Update, context: BotContext) -> None:
    """A button whose data this bot never made: a short answer, nothing in the chat."""
    query = update.callback_query
    assert query is not None
    turn = await Turn.open(update, context)
    await query.answer(turn.t("error.stale_button"))


async def register_commands(application: BotApplication) -> None:
    """The command menu, in each language: group-admin commands in groups, /stats for group
    admins, and the bot's own admin commands in its admins' private chats."""
    found = application.bot_data.services
    shared: list[tuple[BotCommandScope, tuple[str, ...]]] = [
        (BotCommandScopeDefault(), MENU),
        (BotCommandScopeAllGroupChats(), GROUP_MENU),
        (BotCommandScopeAllChatAdministrators(), GROUP_ADMIN_MENU),
    ]
    for language in CATALOGS:
        for scope, names in shared:
            await _set_menu(application, scope, names, language)
        for admin in found.settings.admin_ids if found is not None else ():
            try:
                await _set_menu(application, BotCommandScopeChat(admin), BOT_ADMIN_MENU, language)
            except BadRequest as error:  # an admin who never opened a chat with the bot
                log.info("no admin command menu for %s: %s", admin, error)


async def _set_menu(
    application: BotApplication, scope: BotCommandScope, names: tuple[str, ...], language: str
) -> None:
    commands = [BotCommand(name, t(language, f"cmd.{name}")) for name in names]
    code = None if language == DEFAULT_LANGUAGE else language
    await application.bot.set_my_commands(commands, scope=scope, language_code=code)


async def on_error(update: object, context: BotContext) -> None:
    """Log with context; tell the person something went wrong, never how (no tracebacks)."""
    summary = "no update"
    if isinstance(update, Update):
        user = update.effective_user
        chat = update.effective_chat
        summary = f"update {update.update_id} user={user.id if user else None} chat={chat.id if chat else None}"
    log.error("unhandled error on %s", summary, exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        language = pick_language(
            update.effective_user.language_code if update.effective_user else None
        )
        try:
            await update.effective_message.reply_html(t(language, "error.generic"), do_quote=True)
        except Exception:
            log.warning("could not tell the user about the error", exc_info=True)
