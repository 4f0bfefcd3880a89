"""Telegram's native Stop for message drafts (Bot API 10.3), spoken around python-telegram-bot.

DELETE THIS MODULE once python-telegram-bot supports Bot API 10.3 (22.8, the newest
release, covers 10.0): `can_stop` and `keep_on_stop` become arguments of
`Bot.send_message_draft`, and `Update.stopped_message_generation` a typed field
(with its `UpdateType`), and both callers (`handlers.request.streaming` and the
`stopped_message_generation` handler in `handlers/__init__`) use those instead.

Until then: a draft is sent with `can_stop` (the person gets a Stop button on the draft)
and `keep_on_stop` (what was written stays in view until the bot's final message) as
`api_kwargs`, and the update that says the person pressed it is read from the update's
raw data (`Update.api_kwargs`), which is where PTB keeps the fields it does not know.

A Bot API server that refuses drafts (an older self-hosted server, a test double) is
noticed at its first refusal: `DraftSupport` logs it once, and from then on streams in
private chats are paced edits with a ■ Stop button, as in groups.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, EndPointNotFound, InvalidToken, TelegramError
from telegram.ext import BaseHandler, CallbackContext, ExtBot

from bot.delivery.outbound import Priority

log = logging.getLogger(__name__)

# The update kind polling and the webhook must ask for: Telegram sends it only when listed.
STOPPED_GENERATION = "stopped_message_generation"
CCT = TypeVar("CCT", bound=CallbackContext[Any, Any, Any, Any])
# The person may stop the draft; what it shows then stays until the bot's message replaces it.
_STOPPABLE = {"can_stop": True, "keep_on_stop": True}


@dataclass(frozen=True)
class StoppedGeneration:
    """A person pressed Stop on a draft: where, and which draft."""

    chat_id: int
    draft_id: int


def stopped_generation(update: object) -> StoppedGeneration | None:
    """The `stopped_message_generation` an update carries, read from its raw data; None for
    any other update."""
    if not isinstance(update, Update):
        return None
    raw = update.api_kwargs.get(STOPPED_GENERATION)
    if not isinstance(raw, Mapping):
        return None
    chat, draft_id = raw.get("chat"), raw.get("draft_id")
    chat_id = chat.get("id") if isinstance(chat, Mapping) else None
    if not isinstance(chat_id, int) or not isinstance(draft_id, int):
        return None
    return StoppedGeneration(chat_id, draft_id)


class StoppedGenerationHandler(BaseHandler[Update, CCT, None]):
    """Takes the updates that carry a `stopped_message_generation`, and only those."""

    def check_update(self, update: object) -> StoppedGeneration | None:
        return stopped_generation(update)


@dataclass
class DraftSupport:
    """Whether this bot's Bot API server takes stoppable drafts, and whose each live one is."""

    usable: bool = True
    _owners: dict[tuple[int, int], int] = field(default_factory=dict)

    async def send(
        self, bot: ExtBot[Priority], chat_id: int, draft_id: int, markup: str, *, owner: int
    ) -> bool:
        """Show `markup` as the draft (empty: Telegram's "Thinking…"), stoppable by its
        `owner`; False, and drafts off from now on, if the server refuses them."""
        if not self.usable:
            return False
        try:
            await bot.send_message_draft(
                chat_id,
                draft_id,
                markup,
                parse_mode=ParseMode.HTML if markup else None,
                api_kwargs=_STOPPABLE,
                rate_limit_args=Priority.STREAM,
            )
        except (BadRequest, EndPointNotFound, InvalidToken) as error:
            # A server without the method answers 404, which PTB reports as InvalidToken
            # outside do_api_request (the token is fine: every other call works).
            self.refused(error)
            return False
        self._owners[chat_id, draft_id] = owner
        return True

    def refused(self, error: TelegramError) -> None:
        """The server does not take drafts as sent: say so once, and stream by edits."""
        if self.usable:
            log.warning(
                "the Bot API server refused a stoppable message draft (%s): streaming in "
                "private chats by edits with a Stop button from now on",
                error,
            )
        self.usable = False

    def ended(self, chat_id: int, draft_id: int) -> None:
        """The draft's message was sent: a late Stop on it stops nothing."""
        self._owners.pop((chat_id, draft_id), None)

    def owner_of(self, stopped: StoppedGeneration) -> int | None:
        """Whose generation a Stop on a draft stops; None once its message was sent."""
        return self._owners.get((stopped.chat_id, stopped.draft_id))
