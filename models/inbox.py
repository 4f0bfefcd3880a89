"""The inbox: every update the bot accepted, until its answer was sent, and the queries on it.

Telegram forgets an update once the bot acknowledged it (the webhook's 200, or
the next getUpdates offset). A crash after that and before the answer would
lose the request silently, so the update is written here first and marked
done when handling finished; on start the rows never marked done are handled
again. A row is keyed by the bot's id and Telegram's update id, so a resent
update is recognised and several bots may share one database.

Several replicas of one bot share the inbox: a row names the replica handling it
(`claimed_by`) and until when (`lease_until`, renewed while it lives). Another replica
takes over only rows whose lease ran out, and the claim is one UPDATE whose condition
is checked again on the row it changes, so two replicas never both take one row.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JsonDict, UTCDateTime, upsert, utcnow
from models.database import Database


class InboxUpdate(Base):
    """One update as Telegram sent it; `done_at` is set once the bot finished handling it."""

    __tablename__ = "inbox"

    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDict)
    # How many times a restart handed it to the handlers again (at most once).
    replays: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The replica handling it, and until when that claim holds unless renewed.
    claimed_by: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class Claim:
    """Who handles an update and until when (a replica renews its claims while it lives)."""

    replica: str
    until: datetime


@dataclass(frozen=True)
class Unanswered:
    """An update to hand to the handlers again, and the chat it came from."""

    update_id: int
    chat_id: int | None
    payload: dict[str, Any]


async def accept(
    session: AsyncSession,
    bot_id: int,
    update_id: int,
    chat_id: int | None,
    payload: dict[str, Any],
    claim: Claim | None = None,
) -> bool:
    """Record an update; False when it was already recorded (Telegram sent it again)."""
    values = {
        "bot_id": bot_id,
        "update_id": update_id,
        "chat_id": chat_id,
        "received_at": utcnow(),
        "payload": payload,
        "replays": 0,
        "done_at": None,
        "claimed_by": claim.replica if claim else None,
        "lease_until": claim.until if claim else None,
    }
    inserted = await upsert(session, InboxUpdate, values, ["bot_id", "update_id"], [])
    return bool(getattr(inserted, "rowcount", 0))


async def mark_done(session: AsyncSession, bot_id: int, update_ids: Collection[int]) -> None:
    await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.bot_id == bot_id, InboxUpdate.update_id.in_(update_ids))
        .values(done_at=utcnow())
    )


async def renew(session: AsyncSession, bot_id: int, claim: Claim) -> None:
    """Extend every claim this replica holds on an update not yet done."""
    await session.execute(
        update(InboxUpdate)
        .where(
            InboxUpdate.bot_id == bot_id,
            InboxUpdate.claimed_by == claim.replica,
            InboxUpdate.done_at.is_(None),
        )
        .values(lease_until=claim.until)
    )


async def take_unanswered(
    session: AsyncSession,
    bot_id: int,
    since: datetime,
    max_replays: int,
    claim: Claim | None = None,
) -> list[Unanswered]:
    """Updates not done, received after `since` and replayed fewer times than allowed.

    They come in arrival order (per chat, too) and are counted as replayed in
    the same statement, so a crash during the replay cannot loop forever. With a
    `claim`, only updates no live replica holds (no lease, or one that ran out) are
    taken, and claimed for this one.
    """
    conditions = [
        InboxUpdate.bot_id == bot_id,
        InboxUpdate.done_at.is_(None),
        InboxUpdate.received_at >= since,
        InboxUpdate.replays < max_replays,
    ]
    values: dict[str, Any] = {"replays": InboxUpdate.replays + 1}
    if claim is not None:
        conditions.append(
            or_(InboxUpdate.lease_until.is_(None), InboxUpdate.lease_until < utcnow())
        )
        values |= {"claimed_by": claim.replica, "lease_until": claim.until}
    rows = (
        await session.execute(
            update(InboxUpdate)
            .where(*conditions)
            .values(**values)
            .returning(
                InboxUpdate.update_id,
                InboxUpdate.chat_id,
                InboxUpdate.payload,
                InboxUpdate.received_at,
            )
        )
    ).all()
    ordered = sorted(rows, key=lambda row: (row.received_at, row.update_id))
    return [Unanswered(row.update_id, row.chat_id, dict(row.payload)) for row in ordered]


async def prune(session: AsyncSession, bot_id: int, before: datetime) -> tuple[int, int]:
    """Delete done rows, and rows too old to replay; returns (done, given up) counts.

    Rows given up are updates accepted but never answered: a replay budget
    spent, or a bot down for longer than the replay window.
    """
    given_up = (
        await session.execute(
            select(func.count())
            .select_from(InboxUpdate)
            .where(
                InboxUpdate.bot_id == bot_id,
                InboxUpdate.done_at.is_(None),
                InboxUpdate.received_at < before,
            )
        )
    ).scalar_one()
    removed = await session.execute(
        delete(InboxUpdate).where(
            InboxUpdate.bot_id == bot_id,
            or_(InboxUpdate.done_at.is_not(None), InboxUpdate.received_at < before),
        )
    )
    total = int(getattr(removed, "rowcount", 0) or 0)
    return total - given_up, given_up


class Inbox:
    """Updates accepted and not yet answered, so a restart answers what a crash left."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def accept(
        self,
        bot_id: int,
        update_id: int,
        chat_id: int | None,
        payload: dict[str, Any],
        claim: Claim | None = None,
    ) -> bool:
        """Record an update before Telegram is told it arrived; False if it was recorded before."""
        async with self._db.session() as session:
            return await accept(session, bot_id, update_id, chat_id, payload, claim)

    async def renew(self, bot_id: int, claim: Claim) -> None:
        async with self._db.session() as session:
            await renew(session, bot_id, claim)

    async def done(self, bot_id: int, update_ids: Collection[int]) -> None:
        async with self._db.session() as session:
            await mark_done(session, bot_id, update_ids)

    async def unanswered(
        self, bot_id: int, since: datetime, *, max_replays: int = 1, claim: Claim | None = None
    ) -> list[Unanswered]:
        """Updates to handle again after a restart (or a replica's death: with `claim`, those
        no live replica holds), in arrival order, each counted as replayed."""
        async with self._db.session() as session:
            return await take_unanswered(session, bot_id, since, max_replays, claim)

    async def prune(self, bot_id: int, before: datetime) -> tuple[int, int]:
        async with self._db.session() as session:
            return await prune(session, bot_id, before)
