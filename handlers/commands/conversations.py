"""Conversations: /chat, plain text in private chats, replies to the bot's answers in groups,
and /new, /retry (and ↻), /undo, /forget, /system, /groupsystem, /groupconversation.

A turn of a conversation goes through the same request lifecycle as every
command (`lifecycle.serve_command` with the registry's `chat` row);
`handlers.request.chat_history` reads the conversation it continues and keeps the answer.
"""

from __future__ import annotations

import html
import logging
from datetime import timedelta

from telegram import Update

from bot.delivery.order import current_ticket
from bot.errors import InputTooLong, StoreUnavailable, UsageHint
from bot.tasks import TASKS
from handlers.request.chat_history import (
    conversation_key,
    conversation_turn,
    last_exchange,
    read_retry,
    system_prompt,
)
from handlers.request.context import BotContext
from handlers.request.lifecycle import serve_command
from handlers.request.parsing import command_text, parse_id
from handlers.request.permissions import require_group_admin
from handlers.request.turn import Turn, handle_errors
from models.base import utcnow
from models.database import or_default

log = logging.getLogger(__name__)

CHAT = TASKS["chat"]
# The longest system prompt a person or a group may set; the model reads it every turn.
MAX_SYSTEM_PROMPT_CHARS = 1000
SHARED, SEPARATE = "shared", "separate"
# How much of the question /undo quotes when it says what it took back.
UNDO_QUOTE_CHARS = 60


async def conversation_message(update: Update, context: BotContext) -> None:
    """Plain text in a private chat, or a reply in a group to one of the bot's chat answers."""
    turn = await Turn.open(update, context)
    replied = turn.message.reply_to_message
    if turn.in_group:
        if replied is None or replied.from_user is None or replied.from_user.id != context.bot.id:
            return
        if not await continues_a_conversation(turn, replied.message_id):
            return
    await serve_command(turn, CHAT)


async def continues_a_conversation(turn: Turn, replied_id: int) -> bool:
    """Whether the bot's message replied to is a conversation answer.

    An answer is stored just after it is shown, so a reply typed at once may arrive
    before its row: not found, the question waits for the chat's earlier updates (the
    one storing that answer among them) to finish, and looks again.
    """
    conversations = turn.services.store.conversations
    what = "whether a reply continues a conversation"
    if await or_default(conversations.is_answer(turn.chat.id, replied_id), False, what=what):
        return True
    ticket = current_ticket()
    if ticket is None:
        return False
    await ticket.wait_earlier_finished()
    return await or_default(conversations.is_answer(turn.chat.id, replied_id), False, what=what)


@handle_errors
async def new_command(turn: Turn) -> None:
    """/new: this conversation is over; the next message starts a fresh one.

    Sent while an answer of this conversation is being written (or messages wait for
    theirs), it applies after them, in the order it was sent, and says so.
    """
    async with conversation_turn(turn) as waited:
        key = await conversation_key(turn)
        await turn.services.store.conversations.start_new(key.chat_id, key.user_id, key.topic_id)
    await turn.reply(turn.t("chat.new_after" if waited else "chat.new"))


async def retry_command(update: Update, context: BotContext) -> None:
    """/retry: ask this conversation's last question again, from the same history; the new
    answer replaces the old one in the conversation. A turn like any other: guarded,
    counted, and in line behind an answer being written."""
    await serve_command(await Turn.open(update, context), CHAT, read_retry)


async def retry_button(update: Update, context: BotContext) -> None:
    """↻ under a conversation answer: its asker has that answer asked again (/retry)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    turn = await Turn.open(update, context)
    if parse_id(query.data.partition(":")[2]) != turn.owner_id:
        await query.answer(turn.t("chat.retry_not_yours"), show_alert=True)
        return
    await query.answer()
    await serve_command(turn, CHAT, read_retry)


@handle_errors
async def undo_command(turn: Turn) -> None:
    """/undo: take back this person's last question and its answer; the conversation goes on
    from before them. Sent while an answer is written, it waits for it (and takes it back)."""
    async with conversation_turn(turn):
        exchange = await last_exchange(turn)
        await turn.services.store.conversations.take_back(exchange)
    question = exchange.question
    shortened = question if len(question) <= UNDO_QUOTE_CHARS else question[:UNDO_QUOTE_CHARS] + "…"
    await turn.reply(turn.t("chat.undone", question=html.escape(shortened)))


@handle_errors
async def forget_command(turn: Turn) -> None:
    """/forget: delete everything this person said to the chat model, and its answers.

    Like /new, it waits for the answer being written in this conversation, so that
    answer is forgotten too, and says so.
    """
    async with conversation_turn(turn) as waited:
        count = await turn.services.store.conversations.forget(turn.owner_id)
    key = "chat.forgotten_after" if waited else "chat.forgotten"
    await turn.reply(turn.t(key, count=count))


def _prompt_words(turn: Turn) -> str | None:
    """What follows /system: a prompt, `off` to clear it, or nothing to show the current one."""
    words = command_text(turn.message)
    if len(words) > MAX_SYSTEM_PROMPT_CHARS:
        raise InputTooLong(length=len(words), limit=MAX_SYSTEM_PROMPT_CHARS)
    return words or None


@handle_errors
async def system_command(turn: Turn) -> None:
    """/system [prompt | off]: what the chat model is told before this person's conversations."""
    words = _prompt_words(turn)
    store = turn.services.store
    if words is None:
        current = await system_prompt(turn)
        await turn.reply(turn.t("chat.system_is", prompt=current or "—"))
        return
    prompt = None if words.lower() == "off" else words
    await store.preferences.set_system_prompt(turn.owner_id, prompt)
    await turn.reply(turn.t("chat.system_set" if prompt else "chat.system_off"))


@handle_errors
async def group_system_command(turn: Turn) -> None:
    """/groupsystem [prompt | off]: the group's system prompt, for members who set none."""
    await require_group_admin(turn)
    words = _prompt_words(turn)
    if words is None:
        setup = await turn.services.store.preferences.group_setup(turn.chat.id)
        await turn.reply(turn.t("chat.system_is", prompt=setup.system_prompt or "—"))
        return
    prompt = None if words.lower() == "off" else words
    await turn.services.store.preferences.set_chat_system_prompt(turn.chat.id, prompt)
    await turn.reply(turn.t("chat.group_system_set" if prompt else "chat.system_off"))


@handle_errors
async def group_conversation_command(turn: Turn) -> None:
    """/groupconversation shared|separate: one conversation for the group, or one per member."""
    await require_group_admin(turn)
    choice = command_text(turn.message).lower()
    if choice not in (SHARED, SEPARATE):
        raise UsageHint("error.usage_groupconversation")
    await turn.services.store.preferences.set_shared_conversation(turn.chat.id, choice == SHARED)
    await turn.reply(turn.t(f"chat.group_{choice}"))


async def prune_history(context: BotContext) -> None:
    """The retention job: delete conversation messages older than the retention setting."""
    services = context.services
    days = services.settings.chat_retention_days
    if not days:
        return
    try:
        removed = await services.store.conversations.prune(utcnow() - timedelta(days=days))
    except StoreUnavailable:
        log.warning("conversation retention skipped: store unavailable")
        return
    if removed:
        log.info("deleted %d conversation messages older than %d days", removed, days)
