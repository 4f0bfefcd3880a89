"""One update's worth of context for a handler: who asked, where, in which language.

Handlers open a `Turn`, do their one job, and let `handle_errors` turn any
UserFacingError into a one-line localized reply, so no handler repeats the
error plumbing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from telegram import Chat, InlineKeyboardMarkup, Message, Update, User

from bot.admission.access_policy import Subject
from bot.delivery.outbound import PriorityRateLimiter
from bot.delivery.replies import LongReplies, reply_html
from bot.delivery.shared_answers import SharedAnswers
from bot.engine import public_model_id
from bot.errors import UserFacingError
from bot.i18n import pick_language, t
from handlers.request.context import BotContext, Services
from models.database import or_default

log = logging.getLogger(__name__)

Handler = Callable[[Update, BotContext], Coroutine[Any, Any, None]]

# The message values that name a model.
_MODEL_VALUES = frozenset({"model", "alternative"})


@dataclass
class Turn:
    update: Update
    context: BotContext
    services: Services
    language: str

    @classmethod
    async def open(cls, update: Update, context: BotContext) -> Turn:
        found = context.services
        user = update.effective_user
        chosen = None
        if user is not None:
            chosen = await or_default(
                found.store.preferences.get_language(user.id), None, what="the reply language"
            )
        language = pick_language(chosen, user.language_code if user else None)
        return cls(update, context, found, language)

    @property
    def user(self) -> User | None:
        """The person, or None for a channel post (channels speak as the chat)."""
        return self.update.effective_user

    @property
    def owner_id(self) -> int:
        """Whose settings, limits, requests and history these are.

        A person's own; but a message sent as a chat (an anonymous group admin,
        whose `sender_chat` is the group, or someone posting as a channel) belongs
        to that chat. Telegram gives all such messages one shared stand-in `from`
        account, which must never pool everyone's settings and limits.
        """
        owner = owner_of(self.update)
        assert owner is not None, "every update a Turn is opened for has a sender or a chat"
        return owner

    @property
    def chat(self) -> Chat:
        assert self.update.effective_chat is not None
        return self.update.effective_chat

    @property
    def chat_id(self) -> int | None:
        """The chat the update came from; None for inline queries, which have none."""
        chat = self.update.effective_chat
        return chat.id if chat is not None else None

    @property
    def message(self) -> Message:
        assert self.update.effective_message is not None
        return self.update.effective_message

    @property
    def in_private(self) -> bool:
        chat = self.update.effective_chat
        return chat is not None and chat.type == Chat.PRIVATE

    @property
    def in_group(self) -> bool:
        chat = self.update.effective_chat
        return chat is not None and chat.type in (Chat.GROUP, Chat.SUPERGROUP)

    def t(self, key: str, **values: Any) -> str:
        """The message in this person's language; a model in a local folder named by its
        folder alone (`local/<name>`), so the operator's paths never reach a chat."""
        for name in _MODEL_VALUES & values.keys():
            values[name] = public_model_id(str(values[name]))
        return t(self.language, key, values)

    async def reply(
        self,
        markup: str,
        keyboard: InlineKeyboardMarkup | None = None,
        *,
        shareable: bool = False,
    ) -> Message:
        """Reply in this chat's order. A `shareable` answer in a group may go out in one
        message with other answers ready at the same moment (see SharedAnswers)."""
        if shareable and self.in_group and keyboard is None and SharedAnswers.fits(markup):
            return await self.services.shared_answers.reply(self.message, markup, self.asker)
        return await reply_html(self.message, markup, keyboard=keyboard, long=self.long_replies)

    @property
    def budget_spare(self) -> float:
        """How much of this chat's Telegram budget is free right now, 0 to 1: optional
        messages (status lines, streaming edits) are skipped where it runs low, so they
        never take a slot an answer will need."""
        limiter = self.context.bot.rate_limiter
        if not isinstance(limiter, PriorityRateLimiter) or self.chat_id is None:
            return 1.0
        return limiter.spare(self.chat_id)

    @property
    def asker(self) -> str:
        """How a shared answer names who asked: the chat they posted as, or their name."""
        sender_chat = self.message.sender_chat
        if sender_chat is not None:
            return sender_chat.title or sender_chat.username or str(sender_chat.id)
        user = self.user
        return user.full_name if user is not None else str(self.owner_id)

    @property
    def long_replies(self) -> LongReplies:
        return LongReplies(self.services.settings.max_reply_messages, self.t("result.cut"))

    async def refuse(self, error: UserFacingError) -> None:
        await self.reply(self.t(error.key, **error.values))


def owner_of(update: Update) -> int | None:
    """Whose update this is (see `Turn.owner_id`); None for an update with neither sender nor chat.

    A button press is the presser's: its message is the bot's own, which in a channel
    names the channel as its sender, and pressing a button must not make anyone the channel.
    """
    if update.callback_query is not None:
        return update.callback_query.from_user.id
    message = update.effective_message
    if message is not None and message.sender_chat is not None:
        return message.sender_chat.id
    if update.effective_user is not None:
        return update.effective_user.id
    return update.effective_chat.id if update.effective_chat is not None else None


def subject_of(update: Update) -> Subject | None:
    """Who the access rule judges for this update, and where (see `bot.admission.access_policy`)."""
    owner = owner_of(update)
    if owner is None:
        return None
    chat = update.effective_chat
    return Subject(owner, chat.id if chat else None, chat is not None and chat.type != Chat.PRIVATE)


def handle_errors(handler: Callable[[Turn], Awaitable[None]]) -> Handler:
    """Adapt `async def handler(turn)` to PTB, replying to UserFacingErrors in one place."""

    @functools.wraps(handler)
    async def wrapper(update: Update, context: BotContext) -> None:
        turn = await Turn.open(update, context)
        try:
            await handler(turn)
        except UserFacingError as error:
            await turn.refuse(error)

    return wrapper
