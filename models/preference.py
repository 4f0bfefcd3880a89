"""What a user, or a group's admins, chose for a task: a model and generation parameters.

Both tables have the same shape; a `Scope` says which one a query works on, so the
queries below serve a user's own choices and a group's defaults alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, ForeignKey, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JsonDict, UTCDateTime, upsert, utcnow
from models.user import Chat, User, ensure_owner


class UserPreference(Base):
    """One row per (user, task). A NULL model or a missing parameter means "inherit"."""

    __tablename__ = "user_preferences"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChatDefault(Base):
    """A group's defaults for a task, set by its admins; members inherit what they did not set."""

    __tablename__ = "chat_defaults"

    chat_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chats.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_id: Mapped[str | None] = mapped_column(String(255))
    params: Mapped[dict[str, Any]] = mapped_column(JsonDict, default=dict)
    updated_by: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


ChoiceRow = UserPreference | ChatDefault


@dataclass(frozen=True)
class Scope:
    """Whose choices a table holds: users' own, or groups' defaults."""

    kind: str
    table: type[UserPreference] | type[ChatDefault]
    owner_column: str
    owner_table: type[User] | type[Chat]
    owner_defaults: dict[str, Any] = field(default_factory=dict)

    def owned_by(self, owner: int) -> Any:
        """The WHERE clause picking this owner's rows."""
        return getattr(self.table, self.owner_column) == owner


USER_SCOPE = Scope("user", UserPreference, "user_id", User)
# A group first met through an admin's command; touch_chat fills in its real type and title.
CHAT_SCOPE = Scope("chat", ChatDefault, "chat_id", Chat, {"type": "group"})


@dataclass(frozen=True)
class Choice:
    """A stored model/params choice for one task, as cached in memory."""

    model_id: str | None
    params: dict[str, Any]


async def read_choice(session: AsyncSession, scope: Scope, owner: int, task: str) -> Choice | None:
    table = scope.table
    row = (
        await session.execute(
            select(table.model_id, table.params).where(scope.owned_by(owner), table.task == task)
        )
    ).first()
    return Choice(row.model_id, dict(row.params or {})) if row else None


async def locked_choice(session: AsyncSession, scope: Scope, owner: int, task: str) -> ChoiceRow:
    """The owner's row for a task (owner and row created if missing), locked for this transaction."""
    await ensure_owner(session, scope.owner_table, owner, **scope.owner_defaults)
    key = {scope.owner_column: owner, "task": task}
    await upsert(session, scope.table, {**key, "params": {}}, list(key), [])
    stmt = select(scope.table).filter_by(**key).with_for_update()
    return cast(ChoiceRow, (await session.execute(stmt)).scalar_one())


async def delete_choices(session: AsyncSession, scope: Scope, owner: int, task: str | None) -> int:
    """Forget the owner's choices for one task, or all of them; how many rows went."""
    stmt = delete(scope.table).where(scope.owned_by(owner))
    if task is not None:
        stmt = stmt.where(scope.table.task == task)
    result = await session.execute(stmt)
    return int(getattr(result, "rowcount", 0) or 0)
