"""Conversation history for the chat model: which conversation a message continues, what
was said in it, and keeping the answer the person saw.

`read_chat` is the reader of the registry's `chat` input kind (see
`handlers.request.lifecycle.READERS`): it turns a message (or a private voice note's
transcript) into a `ChatPrompt` of the conversation it continues, and which
`ConversationTurn` to store once its answer is shown (`remember_turn`, the
lifecycle's after-answer step for conversations). Which
conversation: the one whose answer the message replies to if it is this
person's (never another member's), else this person's own, or in a group
that shares one, the group's; in a forum, in the message's topic.

One turn at a time per conversation (`conversation_turn`, the lifecycle's
`IN_TURN` for conversations): a message waits for the answer being written and
then reads a history that holds it. `read_retry` (↻, /retry) reads the last
question again with the history before it; its answer replaces the old one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.delivery.order import current_ticket
from bot.engine import ChatMessage, ChatPrompt
from bot.errors import EmptyInput, InputTooLong, StoreUnavailable, UsageHint
from bot.tasks import ChatReply, Output, TaskSpec
from handlers.request.chat_images import has_pictures, photo_of_turn, pictured_prompt
from handlers.request.media_input import audio_in, media_limits, transcript
from handlers.request.model_call import ConversationTurn, TaskRequest, Usage
from handlers.request.parsing import command_text
from handlers.request.turn import Turn
from models.conversation import LastExchange, NewTurn

log = logging.getLogger(__name__)


def trimmed(conversation: ConversationTurn, result: Output) -> bool:
    """Whether this answer is the first to drop old turns the person has not been told of."""
    dropped = result.dropped_turns if isinstance(result, ChatReply) else 0
    return dropped > 0 and not conversation.trim_noticed


def conversation_notices(conversation: ConversationTurn, result: Output) -> list[str]:
    """Said under the answer: once per conversation that its oldest turns no longer fit the
    model's context, and that a reply to another member's answer went on with the person's own."""
    keys = ["chat.not_your_conversation"] if conversation.replied_elsewhere else []
    return [*keys, "chat.trimmed"] if trimmed(conversation, result) else keys


async def remember_turn(
    turn: Turn,
    conversation: ConversationTurn,
    answer: str,
    shown: Message | None,
    result: Output | None,
) -> None:
    """Store the message and the answer as the person saw it (`result` None: it stopped there).

    A turn asked again (↻, /retry) replaces the answer it was asked again for. A lost
    database costs the conversation this turn, never the answer already shown.
    """
    conversations = turn.services.store.conversations
    shown_id = shown.message_id if shown is not None else None
    try:
        if conversation.replaces is not None:
            await conversations.replace_answer(
                conversation.replaces, answer, shown_id, stopped=result is None
            )
            return
        await conversations.add_turn(
            conversation.conversation_id,
            NewTurn(
                question=conversation.question,
                question_message_id=conversation.question_message_id,
                answer=answer,
                answer_message_id=shown_id,
                author_id=turn.owner_id,
                stopped=result is None,
                trim_noticed=result is not None and trimmed(conversation, result),
                question_image_file_id=conversation.image_file_id,
            ),
        )
    except StoreUnavailable:
        log.warning("a conversation turn was not stored: store unavailable")


class ConversationKey(NamedTuple):
    """Which conversation a message goes on with: its chat, its forum topic (None: General
    or no forum) and its person (None where a group shares one conversation)."""

    chat_id: int
    topic_id: int | None
    user_id: int | None


async def conversation_key(turn: Turn) -> ConversationKey:
    """This message's conversation: in a forum each topic has its own; in a group that
    shares one (`/groupconversation`, set per group), nobody's in particular."""
    message = turn.message
    topic = message.message_thread_id if message.is_topic_message else None
    if not turn.in_group:
        return ConversationKey(turn.chat.id, topic, turn.owner_id)
    shared = (await turn.services.store.preferences.group_setup(turn.chat.id)).shared
    return ConversationKey(turn.chat.id, topic, None if shared else turn.owner_id)


@asynccontextmanager
async def conversation_turn(turn: Turn) -> AsyncIterator[bool]:
    """Hold this message's conversation from reading its history until its answer is stored,
    so a message typed while the answer before it is written waits, then sees that answer.

    Turns line up in the order their messages arrived: this one joins its line once
    every earlier update of the chat found its own way (`Ticket.wait_earlier_settled`),
    however long each took to learn which conversation it continues. Yields whether it
    waited. A waiting turn lets the chat's later updates (a /help) reply meanwhile: its
    own answer comes after the one it waits for anyway.
    """
    key = await conversation_key(turn)
    ticket = current_ticket()
    if ticket is not None:
        await ticket.wait_earlier_settled()
    place = ticket.update_id if ticket is not None else None
    async with turn.services.conversation_turns.turn(
        key, on_wait=let_others_reply, place=place
    ) as waited:
        if ticket is not None:
            await ticket.settle()
        yield waited


async def let_others_reply() -> None:
    """Give up this update's place in the chat's reply order (see `bot.delivery.order`)."""
    ticket = current_ticket()
    if ticket is not None:
        await ticket.release()


async def system_prompt(turn: Turn) -> str | None:
    """This person's system prompt, else the group's, else the bot's."""
    store = turn.services.store
    own = await store.preferences.system_prompt(turn.owner_id)
    group = (await store.preferences.group_setup(turn.chat.id)).system_prompt if turn.in_group else None
    return own or group or turn.services.settings.chat_system_prompt or None


def retry_keyboard(turn: Turn) -> InlineKeyboardMarkup:
    """The ↻ under a finished conversation answer: its asker may have it asked again."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(turn.t("chat.retry_button"), callback_data=f"retry:{turn.owner_id}")]]
    )


async def last_exchange(turn: Turn) -> LastExchange:
    """This person's last question and its answer in this conversation: the one under the
    ↻ pressed (only the latest answer of its conversation), else the conversation's last."""
    key = await conversation_key(turn)
    pressed = turn.update.callback_query
    answer_id = pressed.message.message_id if pressed and pressed.message else None
    exchange = await turn.services.store.conversations.last_exchange(
        key.chat_id,
        key.user_id,
        topic_id=key.topic_id,
        answer_message_id=answer_id,
        max_turns=turn.services.settings.chat_history_messages,
    )
    if exchange is None:
        raise UsageHint("chat.retry_not_latest" if answer_id else "chat.no_last_exchange")
    if exchange.author_id != turn.owner_id:
        raise UsageHint("chat.not_your_exchange")
    return exchange


async def read_retry(turn: Turn, spec: TaskSpec, usage: Usage) -> TaskRequest:
    """The last question of the conversation asked again, from the history it was asked
    after; its new answer replaces the old one in the conversation."""
    exchange = await last_exchange(turn)
    conversation = ConversationTurn(
        exchange.conversation_id,
        exchange.question,
        exchange.question_message_id,
        trim_noticed=exchange.trim_noticed,
        replaces=exchange.answer_id,
    )
    history = tuple(
        ChatMessage("assistant" if t.role == "assistant" else "user", t.content)
        for t in exchange.before
    )
    prompt = ChatPrompt(await system_prompt(turn), history, exchange.question)
    return TaskRequest(text=exchange.question, inputs=prompt, conversation=conversation)


async def read_chat(turn: Turn, spec: TaskSpec, usage: Usage) -> TaskRequest:
    """The next turn of the conversation this message continues, with what was said before.

    A voice note (auto-transcribed in private chats) speaks its transcript; a photo the
    message carries or replies to goes with the turn (`handlers.request.chat_images`).
    """
    message = turn.message
    media = media_limits(turn.services.settings)
    photo = photo_of_turn(message, media)
    text = command_text(message)
    if not text and audio_in(message) is not None:
        text = await transcript(turn, message, usage) or ""
        if not text:
            raise UsageHint("result.nothing_heard")
    limit = turn.services.settings.max_input_chars
    if not text:
        raise EmptyInput(command=spec.name)
    if len(text) > limit:
        raise InputTooLong(length=len(text), limit=limit)
    key = await conversation_key(turn)
    replied = message.reply_to_message
    ongoing = await turn.services.store.conversations.ongoing(
        key.chat_id,
        key.user_id,
        topic_id=key.topic_id,
        replied_message_id=replied.message_id if replied is not None else None,
        max_turns=turn.services.settings.chat_history_messages,
    )
    conversation = ConversationTurn(
        ongoing.id,
        text,
        message.message_id,
        trim_noticed=ongoing.trim_noticed,
        replied_elsewhere=ongoing.replied_elsewhere,
        image_file_id=photo.file_id if photo is not None else None,
    )
    system = await system_prompt(turn)
    if photo is not None or has_pictures(ongoing.turns):

        async def with_pictures() -> ChatPrompt:
            return await pictured_prompt(turn, system, ongoing.turns, text, photo, media)

        return TaskRequest(text=text, load=with_pictures, conversation=conversation)
    history = tuple(
        ChatMessage("assistant" if t.role == "assistant" else "user", t.content)
        for t in ongoing.turns
    )
    prompt = ChatPrompt(system, history, text)
    return TaskRequest(text=text, inputs=prompt, conversation=conversation)
