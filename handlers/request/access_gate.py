"""Who may use the bot: the gate every update passes first, and redeeming an invite.

`access_gate` runs in handler group -2, before the update is counted or any
command, message, photo, voice note, button or inline query handler sees it;
a refused update goes no further (`ApplicationHandlerStop`). The verdict is
`bot.admission.access_policy`'s, for the person or the chat a message was sent as
(`owner_of`, as everywhere else), or for the group or channel it was sent in.

A refused person is told once a day that the bot is private, then ignored; a
group or channel that is not allowed is told once and left. An inline query
gets no results. `/start <code>` in a private chat passes the gate so a
newcomer can redeem an invite, unless an admin revoked them: a revocation
wins over every invite.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from telegram import Chat, Update
from telegram.error import TelegramError
from telegram.ext import ApplicationHandlerStop

from bot.admission.access_policy import AccessPolicy, Subject, Verdict
from bot.errors import InvalidInvite
from bot.i18n import pick_language, t
from handlers.request.context import BotContext
from handlers.request.turn import Turn, subject_of

log = logging.getLogger(__name__)

# Telegram's deep-link payload: up to 64 of A-Z, a-z, 0-9, _ and -.
_START_WITH_CODE = re.compile(r"^/start(?:@\w+)?\s+([A-Za-z0-9_-]{1,64})\s*$")
# What a refusal says, by verdict, for a person and for a group or channel.
_REFUSALS = {
    (Verdict.REFUSED, False): "access.private",
    (Verdict.REFUSED, True): "access.chat_private",
    (Verdict.UNKNOWN, False): "access.unavailable",
    (Verdict.UNKNOWN, True): "access.unavailable",
}


def invite_code_in(update: Update) -> str | None:
    """The code of `/start <code>` (what a t.me/<bot>?start=<code> link sends) in a private chat."""
    message, chat = update.message, update.effective_chat
    if message is None or chat is None or chat.type != Chat.PRIVATE:
        return None
    found = _START_WITH_CODE.match(message.text or "")
    return found.group(1) if found else None


async def _passes(update: Update, subject: Subject, access: AccessPolicy) -> Verdict:
    """The verdict on `update`, ALLOWED also for a newcomer's `/start <code>`."""
    verdict = await access.verdict(subject)
    if verdict is not Verdict.ALLOWED and invite_code_in(update) is not None:
        return Verdict.ALLOWED if await access.may_redeem(subject) else verdict
    return verdict


async def passes_gate(update: Update, access: AccessPolicy) -> bool:
    """Whether `access_gate` will let `update` through: the inbox writes down only those,
    so nothing of a refused update is stored."""
    subject = subject_of(update)
    return subject is None or await _passes(update, subject, access) is Verdict.ALLOWED


async def access_gate(update: Update, context: BotContext) -> None:
    """Stop every update the bot must not serve, saying why at most once a day."""
    subject = subject_of(update)
    if subject is None:
        return
    found = context.services
    verdict = await _passes(update, subject, found.access)
    if verdict is Verdict.ALLOWED:
        return
    found.metrics.access_refusals.labels("chat" if subject.shared_chat else "user").inc()
    language = pick_language(update.effective_user.language_code if update.effective_user else None)
    text = t(language, _REFUSALS[verdict, subject.shared_chat])
    try:
        await _tell(update, text, due=lambda: found.access.told.due(subject.judged))
    except TelegramError as error:  # a refusal that cannot be delivered is not worth more
        log.info("could not tell %s it is refused: %s", subject.judged, error)
    if verdict is Verdict.REFUSED and subject.shared_chat and subject.chat_id is not None:
        await _leave(context, subject.chat_id)
    raise ApplicationHandlerStop


async def _tell(update: Update, text: str, *, due: Callable[[], bool]) -> None:
    """Inline queries get no results; a button press is answered (with `text` when due);
    a message gets `text` as a reply when due, and nothing otherwise."""
    if update.inline_query is not None:
        await update.inline_query.answer([], cache_time=0, is_personal=True)
    elif update.callback_query is not None:
        await update.callback_query.answer(text if due() else None)
    elif update.effective_message is not None and due():
        await update.effective_message.reply_html(text, do_quote=True)


async def _leave(context: BotContext, chat_id: int) -> None:
    try:
        await context.bot.leave_chat(chat_id)
    except TelegramError as error:  # already gone: a second update raced the first
        log.info("could not leave chat %s: %s", chat_id, error)
    else:
        log.info("left chat %s: it is not allowed to use this bot", chat_id)


async def redeem_invite(turn: Turn) -> bool:
    """`/start <code>` from someone not yet allowed: take one use of the code and let them in.

    Someone already allowed keeps the code's uses for others. Attempts are rate
    limited like requests, so guessing codes is as slow as using the bot.
    """
    code = invite_code_in(turn.update)
    subject = subject_of(turn.update)
    if code is None or subject is None:
        return False
    if await turn.services.access.verdict(subject) is Verdict.ALLOWED:
        return False
    await turn.services.limiter.check(turn.owner_id)
    if not await turn.services.store.access.redeem_invite(code, turn.owner_id):
        raise InvalidInvite()
    log.info("user %s redeemed an invite code", turn.owner_id)
    return True
