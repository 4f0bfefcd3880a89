"""Who may use the bot: admins' grants and revocations, invite codes, and their queries.

A subject is a Telegram id: a person (positive) or a group or channel
(negative), as Telegram numbers them, so one table holds both. A revocation is
kept as a row (`allowed` false) rather than deleted, so it beats an operator's
HFBOT_ALLOWED_USERS entry and a bot whose last grant was revoked stays private.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Integer,
    String,
    exists,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, upsert, utcnow
from models.database import Database


class AccessGrant(Base):
    """An admin's decision (or a redeemed invite) about one person or chat."""

    __tablename__ = "access_grants"

    subject_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    allowed: Mapped[bool] = mapped_column(Boolean)
    changed_by: Mapped[int | None] = mapped_column(BigInteger)
    invite_code: Mapped[str | None] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InviteCode(Base):
    """A code a new person redeems with `/start <code>`, at most `max_uses` times."""

    __tablename__ = "invite_codes"
    __table_args__ = (
        CheckConstraint("max_uses >= 1", name="max_uses_positive"),
        CheckConstraint("uses >= 0 AND uses <= max_uses", name="uses_within_max"),
    )

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    max_uses: Mapped[int] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # `<bot>:<chat>:<message>` of the /invite that asked for it: the same message handled
    # again (a replay after a crash) finds this code instead of minting another.
    requested_in: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)


@dataclass(frozen=True)
class Invite:
    code: str
    max_uses: int
    uses: int
    expires_at: datetime | None


async def read_decision(session: AsyncSession, subject_id: int) -> bool | None:
    """True (granted), False (revoked) or None (no decision about this subject)."""
    return (
        await session.execute(
            select(AccessGrant.allowed).where(AccessGrant.subject_id == subject_id)
        )
    ).scalar_one_or_none()


async def any_restriction(session: AsyncSession) -> bool:
    """Whether admins ever granted, revoked or invited: then the bot is private."""
    stmt = select(or_(exists().select_from(AccessGrant), exists().select_from(InviteCode)))
    return bool((await session.execute(stmt)).scalar_one())


def _decision(
    subject_id: int, allowed: bool, changed_by: int | None, invite_code: str | None
) -> dict[str, object]:
    return {
        "subject_id": subject_id,
        "allowed": allowed,
        "changed_by": changed_by,
        "invite_code": invite_code,
        "changed_at": utcnow(),
    }


_DECISION_COLUMNS = ["allowed", "changed_by", "invite_code", "changed_at"]


async def write_decision(
    session: AsyncSession,
    subject_id: int,
    allowed: bool,
    changed_by: int | None,
    invite_code: str | None = None,
) -> None:
    """An admin's grant or revocation: it replaces whatever was decided before."""
    values = _decision(subject_id, allowed, changed_by, invite_code)
    await upsert(session, AccessGrant, values, ["subject_id"], _DECISION_COLUMNS)


async def create_invite(
    session: AsyncSession,
    code: str,
    max_uses: int,
    expires_at: datetime | None,
    created_by: int | None,
    requested_in: str | None = None,
) -> Invite:
    """A new code, or the one already made for `requested_in` (then `code` is not used)."""
    values = {
        "code": code,
        "max_uses": max_uses,
        "uses": 0,
        "expires_at": expires_at,
        "created_by": created_by,
        "created_at": utcnow(),
        "requested_in": requested_in,
    }
    if requested_in is None:
        session.add(InviteCode(**values))
        return Invite(code, max_uses, 0, expires_at)
    await upsert(session, InviteCode, values, ["requested_in"], [])
    row = await session.scalar(select(InviteCode).where(InviteCode.requested_in == requested_in))
    assert row is not None, "inserted, or there already"
    return Invite(row.code, row.max_uses, row.uses, row.expires_at)


async def redeem_invite(session: AsyncSession, code: str, user_id: int) -> bool:
    """Use one of the code's uses and grant `user_id`; False when they are not let in.

    The grant comes first, and is written only where no decision about the
    person exists (INSERT … ON CONFLICT DO NOTHING): a revocation wins over
    every invite, and one person redeeming a code several times at once takes
    one use, since the others find the grant already there (PostgreSQL makes
    them wait for the first to commit; SQLite serializes writers with
    `BEGIN IMMEDIATE`) and take none. One conditional UPDATE then takes the
    use, so two people redeeming the last use at once cannot both win:
    PostgreSQL re-checks the condition on the row it locked. The loser's grant
    is rolled back with its savepoint.
    """
    now = utcnow()
    async with session.begin_nested() as attempt:
        granted = await upsert(
            session, AccessGrant, _decision(user_id, True, None, code), ["subject_id"], []
        )
        if not getattr(granted, "rowcount", 0):
            return await read_decision(session, user_id) is True
        taken = await session.execute(
            update(InviteCode)
            .where(
                InviteCode.code == code,
                InviteCode.uses < InviteCode.max_uses,
                or_(InviteCode.expires_at.is_(None), InviteCode.expires_at > now),
            )
            .values(uses=InviteCode.uses + 1)
        )
        if not getattr(taken, "rowcount", 0):
            await attempt.rollback()
            return False
    return True


async def read_invite(session: AsyncSession, code: str) -> Invite | None:
    row = await session.get(InviteCode, code)
    return Invite(row.code, row.max_uses, row.uses, row.expires_at) if row else None


class AccessBook:
    """Admins' grants and revocations, and invite codes: what the access policy reads."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.restricted_last_seen: bool | None = None

    async def decision(self, subject_id: int) -> bool | None:
        """An admin's grant (True) or revocation (False) of a person or chat; None: neither."""
        return await self._db.read_through(
            "access", subject_id, "", partial(read_decision, subject_id=subject_id)
        )

    async def restricted(self) -> bool:
        """Whether any grant, revocation or invite code exists (then the bot is private).

        The last answer is kept in `restricted_last_seen`, so a private bot stays
        private while the database cannot be reached.
        """
        found = await self._db.read_through("access_any", 0, "", any_restriction)
        self.restricted_last_seen = found
        return found

    async def decide(self, subject_id: int, allowed: bool, *, by: int | None) -> None:
        """Grant or revoke a person (positive id) or a group or channel (negative id)."""
        async with self._db.session() as session:
            await write_decision(session, subject_id, allowed, by)
        self._db.forget("access", subject_id)
        self._db.forget("access_any", 0)
        self.restricted_last_seen = True

    async def create_invite(
        self,
        code: str,
        max_uses: int,
        expires_at: datetime | None,
        *,
        by: int | None,
        requested_in: str | None = None,
    ) -> Invite:
        """A new invite code; with `requested_in` (the message that asked), at most one per
        request: asking again returns the code made the first time."""
        async with self._db.session() as session:
            invite = await create_invite(session, code, max_uses, expires_at, by, requested_in)
        self._db.forget("access_any", 0)
        self.restricted_last_seen = True
        return invite

    async def redeem_invite(self, code: str, user_id: int) -> bool:
        """Take one use of the code and grant the person; False when it is used up or expired,
        or the person was revoked. A person already granted takes no use and gets True."""
        async with self._db.session() as session:
            redeemed = await redeem_invite(session, code, user_id)
        self._db.forget("access", user_id)
        return redeemed

    async def get_invite(self, code: str) -> Invite | None:
        async with self._db.session(read_only=True) as session:
            return await read_invite(session, code)
