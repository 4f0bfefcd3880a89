"""Daily quotas: how many answered requests a person may have a day, bot-wide and per group.

Each limit that applies to a request is one `Allowance` (the bot-wide
`daily_quota`, and in a group the quota its admins set with `/groupquota`,
which counts that member's requests in that group only); a request is refused
when any of them is used up, so in a group the smaller one binds. Counts come
from the usage log since the last reset (00:00 UTC): a request counts when it
did work the person got, answered, or stopped, cancelled or timed out after
its stream showed text, or refused after the voice note it read was
transcribed (`Usage.charged`); a refusal, or a failure before any model work
reached them, costs nothing. The bot's admins are exempt.

A quota is a person's: Telegram hides who sends a message as a chat (an
anonymous admin, someone posting as a channel), so everything sent as a chat
in one chat shares that chat's quota, and one person's ten channels get one
quota there, not ten (`models.usage.counted_as`).

A quota must never cost a person an answer because the database is down: when
the counts cannot be read, the request goes ahead and a warning is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from bot.errors import GroupQuotaExceeded, QuotaExceeded, StoreUnavailable
from handlers.request.turn import Turn
from models.base import utcnow
from models.usage import QuotaRoom, counted_as

log = logging.getLogger(__name__)

# When every day's count starts again: midnight UTC, the same moment for everyone.
RESET_AT = time(0, 0, tzinfo=UTC)
RESET_NOTE = f"{RESET_AT.strftime('%H:%M')} UTC"
# How much longer than a model call a request may take (reading input, vetting) before a
# hold on the quota that was never released (a crash skips the usage log) lapses.
HOLD_SLACK_S = 120.0


def day_start(now: datetime) -> datetime:
    """The last reset at or before `now`: where today's count begins."""
    start = datetime.combine(now.astimezone(UTC).date(), RESET_AT)
    return start if start <= now else start - timedelta(days=1)


def reset_values(now: datetime) -> dict[str, object]:
    """What a refusal says about the reset: its time of day and how long until then.

    Minutes round up, so the wait never reads "0 h 0 min" while it is still ahead.
    """
    left = day_start(now) + timedelta(days=1) - now
    minutes = math.ceil(left.total_seconds() / 60)
    return {
        "reset": RESET_NOTE,
        "hours": minutes // 60,
        "minutes": minutes % 60,
    }


@dataclass(frozen=True)
class Allowance:
    """One daily limit that applies to a request: its size, the chat it counts in (None:
    everywhere), what is used (answered, and held by requests still running) and its
    refusal."""

    limit: int
    chat_id: int | None
    answered: int
    held: int
    refusal: type[QuotaExceeded]

    @property
    def left(self) -> int:
        return max(0, self.limit - self.answered - self.held)

    @property
    def room(self) -> QuotaRoom:
        return QuotaRoom(self.limit, self.chat_id, self.answered)


async def allowances(turn: Turn, *, with_held: bool = True) -> list[Allowance]:
    """The daily limits on this person here: none for the bot's admins or where none is set.

    `with_held=False` leaves out requests still running (the check takes them into
    account as it holds a place, in one step). Raises StoreUnavailable when the counts
    (or the group's quota) cannot be read.
    """
    if turn.owner_id in turn.services.settings.admin_ids:
        return []
    store = turn.services.store
    # (limit, chat counted in (None: everywhere), refusal) per quota that may apply.
    quotas: list[tuple[int, int | None, type[QuotaExceeded]]] = [
        (turn.services.settings.daily_quota, None, QuotaExceeded)
    ]
    if turn.in_group:
        group_quota = await store.preferences.group_quota(turn.chat.id)
        quotas.append((group_quota or 0, turn.chat.id, GroupQuotaExceeded))
    since = day_start(utcnow())
    counted = quota_of(turn)
    found = []
    for limit, chat, refusal in quotas:
        if limit <= 0:
            continue
        answered = await store.usage.answered_since(counted, since, chat_id=chat)
        held = await store.usage.held(counted, chat) if with_held else 0
        found.append(Allowance(limit, chat, answered, held, refusal))
    return found


def quota_of(turn: Turn) -> int:
    """The quota this request counts against: the person's, or for a message sent as a chat,
    the one everyone posting as a chat in this chat shares (`models.usage.counted_as`)."""
    counted = counted_as(turn.owner_id, turn.chat_id)
    assert counted is not None, "a turn always has an owner"
    return counted


async def check_quota(turn: Turn) -> None:
    """Refuse a request whose person used up a daily quota here, naming it and the reset.

    Fails open: with the database unreachable the request goes ahead (logged).
    """
    try:
        found = await allowances(turn, with_held=False)
    except StoreUnavailable:
        log.warning("daily quota of user %s not checked: store unavailable", turn.owner_id)
        return
    if not found:
        return
    # Counted from now until its usage row is logged (the lifecycle logs every request).
    hold_s = turn.services.settings.pool_request_timeout_s + HOLD_SLACK_S
    full = await turn.services.store.usage.hold_served(
        quota_of(turn), turn.chat_id, [allowance.room for allowance in found], for_s=hold_s
    )
    if full is not None:
        refused = found[full]
        raise refused.refusal(limit=refused.limit, **reset_values(utcnow()))


async def quota_line(turn: Turn) -> str | None:
    """`/settings`' "Requests left today: N of M" for the tightest limit; None when unlimited."""
    try:
        found = await allowances(turn)
    except StoreUnavailable:
        return None
    if not found:
        return None
    tightest = min(found, key=lambda allowance: allowance.left)
    return turn.t("settings.quota_left", left=tightest.left, limit=tightest.limit)
