"""Conversation history for the chat model: which conversation a message continues, what
was said in it, and keeping the answer the person saw.

`read_chat` is the reader of the registry's `chat` input kind (see
`handlers.request.lifecycle.READERS`): it turns a message (or a private voice note's
transcript) into a `ChatPrompt` of the conversation it continues, and which
`ConversationTurn` to store once its answer is shown (`remember_turn`, the
lifecycle's after-answer step for conversations). Which
conversation: the one whose answer the message replies to if it is this
person's (never another member's), else this person's own, or in a group
that shares one, the group's.
"""

from __future__ import annotations

import logging

from telegram import Message

from bot.engine import ChatMessage, ChatPrompt
from bot.errors import EmptyInput, InputTooLong, StoreUnavailable, UsageHint
from bot.tasks import ChatReply, Output, TaskSpec
from handlers.request.chat_images import has_pictures, photo_of_turn, pictured_prompt
from handlers.request.media_input import audio_in, media_limits, transcript
from handlers.request.model_call import ConversationTurn, TaskRequest, Usage
from handlers.request.parsing import command_text
from handlers.request.turn import Turn
from models.conversation import NewTurn

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

    A lost database costs the conversation this turn, never the answer already shown.
    """
    try:
        await turn.services.store.conversations.add_turn(
            conversation.conversation_id,
            NewTurn(
                question=conversation.question,
                question_message_id=conversation.question_message_id,
                answer=answer,
                answer_message_id=shown.message_id if shown is not None else None,
                author_id=turn.owner_id,
                stopped=result is None,
                trim_noticed=result is not None and trimmed(conversation, result),
                question_image_file_id=conversation.image_file_id,
            ),
        )
    except StoreUnavailable:
        log.warning("a conversation turn was not stored: store unavailable")


async def conversation_key(turn: Turn) -> tuple[int, int | None]:
    """(chat, person) of this chat's conversation; the person is None where a group shares one."""
    if not turn.in_group:
        return turn.chat.id, turn.owner_id
    shared = (await turn.services.store.preferences.group_setup(turn.chat.id)).shared
    return turn.chat.id, None if shared else turn.owner_id


async def system_prompt(turn: Turn) -> str | None:
    """This person's system prompt, else the group's, else the bot's."""
    store = turn.services.store
    own = await store.preferences.system_prompt(turn.owner_id)
    group = (await store.preferences.group_setup(turn.chat.id)).system_prompt if turn.in_group else None
    return own or group or turn.services.settings.chat_system_prompt or None


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
    chat_id, user_id = await conversation_key(turn)
    replied = message.reply_to_message
    ongoing = await turn.services.store.conversations.ongoing(
        chat_id,
        user_id,
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
