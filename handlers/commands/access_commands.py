"""The access commands of the bot's admins: /grant, /revoke, /invite.

The gate every update passes first, and redeeming an invite, are machinery every
command relies on: `handlers.request.access_gate`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from telegram import Chat

from bot.errors import AdminAlwaysAllowed, UsageHint
from bot.numbers import parse_int
from handlers.request.parsing import command_text, parse_id
from handlers.request.permissions import require_bot_admin
from handlers.request.turn import Turn, handle_errors
from models.base import utcnow

log = logging.getLogger(__name__)

_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1)}
MAX_INVITE_USES = 1000
MAX_INVITE_LIFETIME = 9999  # hours or days


def _target(turn: Turn, command: str) -> int:
    """An id given (negative for a group or channel), the sender replied to, or this group."""
    words = command_text(turn.message).split()
    given = parse_id(words[0]) if len(words) == 1 else None
    if given is not None:
        return given
    replied = turn.message.reply_to_message
    if not words and replied is not None:
        if replied.sender_chat is not None:
            return replied.sender_chat.id
        if replied.from_user is not None:
            return replied.from_user.id
    if not words and turn.chat.type != Chat.PRIVATE:
        return turn.chat.id
    raise UsageHint("access.usage_target", command=command)


def _kind(subject_id: int) -> str:
    """Telegram numbers people from 1 up and groups and channels below 0."""
    return "user" if subject_id > 0 else "chat"


@handle_errors
async def grant_command(turn: Turn) -> None:
    """/grant <id>, or as a reply, or in a group: let a person or a chat use the bot."""
    require_bot_admin(turn)
    subject = _target(turn, "grant")
    await turn.services.store.access.decide(subject, True, by=turn.owner_id)
    await turn.reply(turn.t(f"access.granted_{_kind(subject)}", id=subject))


@handle_errors
async def revoke_command(turn: Turn) -> None:
    """/revoke <id>, or as a reply, or in a group: refuse a person or a chat from now on."""
    require_bot_admin(turn)
    subject = _target(turn, "revoke")
    if turn.services.access.is_admin(subject):
        raise AdminAlwaysAllowed(id=subject)
    await turn.services.store.access.decide(subject, False, by=turn.owner_id)
    await turn.reply(turn.t(f"access.revoked_{_kind(subject)}", id=subject))


def _invite_terms(words: list[str]) -> tuple[int, timedelta | None]:
    """`[uses] [expiry]`: how many people may redeem it (1 by default), and for how long."""
    usage = UsageHint("access.usage_invite", most=MAX_INVITE_USES)
    uses = parse_int(words[0], 1, MAX_INVITE_USES) if words else 1
    if len(words) > 2 or uses is None:
        raise usage
    if len(words) < 2:
        return uses, None
    amount, unit = words[1][:-1], words[1][-1:].lower()
    count = parse_int(amount, 1, MAX_INVITE_LIFETIME)
    if count is None or unit not in _UNITS:
        raise usage
    return uses, count * _UNITS[unit]


@handle_errors
async def invite_command(turn: Turn) -> None:
    """/invite [uses] [24h|7d|…]: a t.me deep link a newcomer opens to be let in."""
    require_bot_admin(turn)
    uses, lifetime = _invite_terms(command_text(turn.message).split())
    expires_at = utcnow() + lifetime if lifetime is not None else None
    # The same message handled twice (replayed after a crash) gets the code made the first time.
    request = f"{turn.context.bot.id}:{turn.chat.id}:{turn.message.message_id}"
    invite = await turn.services.store.access.create_invite(
        secrets.token_urlsafe(12), uses, expires_at, by=turn.owner_id, requested_in=request
    )
    expiry = (
        turn.t("access.expires_at", at=f"{invite.expires_at:%Y-%m-%d %H:%M} UTC")
        if invite.expires_at is not None
        else turn.t("access.expires_never")
    )
    link = f"https://t.me/{turn.context.bot.username}?start={invite.code}"
    await turn.reply(turn.t("access.invite", uses=invite.max_uses, expiry=expiry, link=link))
