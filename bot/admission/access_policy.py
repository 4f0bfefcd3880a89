"""Who may use the bot: one verdict per update, before any handler runs.

The rule, in order:

1. The bot's admins (HFBOT_ADMIN_IDS) always may, anywhere, so they can
   `/grant` the group they are in.
2. In a group or channel the chat is judged, whoever speaks in it; in a private
   chat or an inline query, the person (`Subject.judged`).
3. An admin's decision in the database wins: `/grant` or a redeemed invite
   allows, `/revoke` refuses, even someone HFBOT_ALLOWED_USERS lists.
4. Then the settings: HFBOT_ALLOWED_USERS for people, HFBOT_ALLOWED_GROUPS for
   groups and channels.
5. Anyone else may only while the bot is public: both lists empty and the
   database holding no grant, revocation or invite code.

When the database cannot be reached the lists and the last known answer to
"is the bot private?" still apply; a verdict that needs the database is
`UNKNOWN`, and the person is told that, not that the bot is private.

Who was told "this bot is private" is remembered in bounded memory, not in
the database: refusing a stranger must cost no write (a flood of strangers
would otherwise be a flood of writes), and forgetting at a restart costs at
most one more polite line per person.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bot.config import Settings
from bot.errors import StoreUnavailable
from models.access import AccessBook

DAY_S = 24 * 3600.0


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Subject:
    """Who speaks (a person, or the chat a message was sent as) and where."""

    owner_id: int
    chat_id: int | None
    shared_chat: bool

    @property
    def judged(self) -> int:
        """The id the rule judges: the group or channel, else the person."""
        return self.chat_id if self.shared_chat and self.chat_id is not None else self.owner_id


class OncePerDay:
    """Remembers who was told something in the last 24 hours, for at most `max_entries` ids."""

    def __init__(
        self, max_entries: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._told: OrderedDict[int, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    def due(self, key: int) -> bool:
        """True (and remembered) unless `key` was told within the last day."""
        now = self._clock()
        last = self._told.get(key)
        if last is not None and now - last < DAY_S:
            return False
        self._told[key] = now
        self._told.move_to_end(key)
        while len(self._told) > self._max:
            self._told.popitem(last=False)
        return True


class AccessPolicy:
    """The verdict for each update, from the settings (read live) and the access book (cached)."""

    def __init__(self, settings: Settings, book: AccessBook) -> None:
        self._settings = settings
        self._book = book
        self.told = OncePerDay()

    def is_admin(self, owner_id: int) -> bool:
        return owner_id in self._settings.admin_ids

    def _listed(self, subject: Subject) -> bool:
        listed = (
            self._settings.allowed_groups if subject.shared_chat else self._settings.allowed_users
        )
        return subject.judged in listed

    @property
    def _lists_set(self) -> bool:
        return bool(self._settings.allowed_users or self._settings.allowed_groups)

    async def warm(self) -> None:
        """Learn at start whether the bot is private, so an outage right after start is judged."""
        with contextlib.suppress(StoreUnavailable):
            await self._book.restricted()

    async def verdict(self, subject: Subject) -> Verdict:
        if self.is_admin(subject.owner_id):
            return Verdict.ALLOWED
        try:
            restricted = await self._book.restricted()
            decision = await self._book.decision(subject.judged) if restricted else None
        except StoreUnavailable:
            return self._without_store(subject)
        if decision is not None:
            return Verdict.ALLOWED if decision else Verdict.REFUSED
        if self._listed(subject) or not (restricted or self._lists_set):
            return Verdict.ALLOWED
        return Verdict.REFUSED

    async def may_redeem(self, subject: Subject) -> bool:
        """Whether `subject` may try an invite code: a person no admin revoked.

        A revocation wins over every invite, so a revoked person's `/start <code>`
        is refused at the gate like any outsider's. With the database unreachable
        nobody can redeem anything, so the answer is no.
        """
        if subject.shared_chat:
            return False
        try:
            return await self._book.decision(subject.owner_id) is not False
        except StoreUnavailable:
            return False

    def _without_store(self, subject: Subject) -> Verdict:
        """The lists still hold, and a bot last seen public (read or written) stays public."""
        public = self._book.restricted_last_seen is False and not self._lists_set
        if self._listed(subject) or public:
            return Verdict.ALLOWED
        return Verdict.UNKNOWN
