"""Who may run the commands that change more than their own settings.

Group defaults, a group's conversation and quota, a group's /stats: its admins,
checked live with getChatMember (an admin list cached here would let a demoted
admin keep the power until it expired). Operator commands: the bot's admins
(HFBOT_ADMIN_IDS). Commands of every kind share these checks, so they live
below the commands rather than in any one of them.
"""

from __future__ import annotations

from telegram import ChatMember

from bot.errors import BotAdminOnly, GroupOnly, NotGroupAdmin
from handlers.request.turn import Turn

_ADMIN_STATUSES = {ChatMember.OWNER, ChatMember.ADMINISTRATOR}


def require_bot_admin(turn: Turn) -> None:
    if turn.owner_id not in turn.services.settings.admin_ids:
        raise BotAdminOnly()


async def require_group_admin(turn: Turn, *, refusal: type[NotGroupAdmin] = NotGroupAdmin) -> None:
    """Refuse unless the person speaks for this group as one of its admins."""
    if not turn.in_group:
        raise GroupOnly()
    sender_chat = turn.message.sender_chat
    if sender_chat is not None:
        if sender_chat.id == turn.chat.id:
            return  # an anonymous admin speaks as the group
        raise refusal()  # someone posting as a channel is no admin of this group
    member = await turn.context.bot.get_chat_member(turn.chat.id, turn.owner_id)
    if member.status not in _ADMIN_STATUSES:
        raise refusal()
