"""The inbox: every update the bot accepted, until its answer was sent, and the queries on it.

Telegram forgets an update once the bot acknowledged it (the webhook's 200, or
the next getUpdates offset). A crash after that and before the answer would
lose the request silently, so the update is written here first and marked
done when handling finished; on start the rows never marked done are handled
again. A row is keyed by the bot's id and Telegram's update id, so a resent
update is recognised and several bots may share one database.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, delete, func, or_, select, update
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


@dataclass(frozen=True)
class Unanswered:
    """An update to hand to the handlers again, and the chat it came from."""

    update_id: int
    chat_id: int | None
    payload: dict[str, Any]


async def accept(
    session: AsyncSession, bot_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any]
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
    }
    inserted = await upsert(session, InboxUpdate, values, ["bot_id", "update_id"], [])
    return bool(getattr(inserted, "rowcount", 0))


async def mark_done(session: AsyncSession, bot_id: int, update_ids: Collection[int]) -> None:
    await session.execute(
        update(InboxUpdate)
        .where(InboxUpdate.bot_id == bot_id, InboxUpdate.update_id.in_(update_ids))
        .values(done_at=utcnow())
    )


async def take_unanswered(
    session: AsyncSession, bot_id: int, since: datetime, max_replays: int
) -> list[Unanswered]:
    """Updates not done, received after `since` and replayed fewer times than allowed.

    They come in arrival order (per chat, too) and are counted as replayed in
    the same transaction, so a crash during the replay cannot loop forever.
    """
    rows = (
        await session.execute(
            select(InboxUpdate.update_id, InboxUpdate.chat_id, InboxUpdate.payload)
            .where(
                InboxUpdate.bot_id == bot_id,
                InboxUpdate.done_at.is_(None),
                InboxUpdate.received_at >= since,
                InboxUpdate.replays < max_replays,
            )
            .order_by(InboxUpdate.received_at, InboxUpdate.update_id)
        )
    ).all()
    found = [Unanswered(row.update_id, row.chat_id, dict(row.payload)) for row in rows]
    if found:
        await session.execute(
            update(InboxUpdate)
            .where(
                InboxUpdate.bot_id == bot_id,
                InboxUpdate.update_id.in_([item.update_id for item in found]),
            )
            .values(replays=InboxUpdate.replays + 1)
        )
    return found


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
        self, bot_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any]
    ) -> bool:
        """Record an update before Telegram is told it arrived; False if it was recorded before."""
        async with self._db.session() as session:
            return await accept(session, bot_id, update_id, chat_id, payload)

    async def done(self, bot_id: int, update_ids: Collection[int]) -> None:
        async with self._db.session() as session:
            await mark_done(session, bot_id, update_ids)

    async def unanswered(
        self, bot_id: int, since: datetime, *, max_replays: int = 1
    ) -> list[Unanswered]:
        """Updates to handle again after a restart, in arrival order, each counted as replayed."""
        async with self._db.session() as session:
            return await take_unanswered(session, bot_id, since, max_replays)

    async def prune(self, bot_id: int, before: datetime) -> tuple[int, int]:
        async with self._db.session() as session:
            return await prune(session, bot_id, before)
