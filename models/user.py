"""People and chats the bot has seen, and the queries that read and write them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text, false, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JsonDict, UTCDateTime, upsert, utcnow


class User(Base):
    """A Telegram user. `language` is their /lang choice; it wins over Telegram's."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    telegram_language: Mapped[str | None] = mapped_column(String(16))
    language: Mapped[str | None] = mapped_column(String(16))
    options: Mapped[dict[str, Any]] = mapped_column(
        JsonDict, default=dict, server_default=text("'{}'")
    )
    # What the chat model is told before this person's conversations (`/system`).
    system_prompt: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Chat(Base):
    """A private chat, group, supergroup or channel (Telegram chat ids can be negative)."""

    __tablename__ = "chats"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(255))
    # The group's system prompt (`/groupsystem`), used where a member set none.
    system_prompt: Mapped[str | None] = mapped_column(Text)
    # One conversation for the whole group instead of one per member.
    shared_conversation: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # Requests each member may have answered here per day (`/groupquota`); None: no group quota.
    daily_quota: Mapped[int | None] = mapped_column(Integer)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


async def touch_user(session: AsyncSession, user_id: int, telegram_language: str | None) -> None:
    """Create the user or note that they were seen, with the language Telegram reports."""
    now = utcnow()
    values = {"id": user_id, "telegram_language": telegram_language}
    await upsert(
        session,
        User,
        values | {"first_seen": now, "last_seen": now},
        ["id"],
        ["telegram_language", "last_seen"],
    )


async def touch_chat(
    session: AsyncSession, chat_id: int, chat_type: str, title: str | None
) -> None:
    """Create the chat or note that it was seen, with its current type and title."""
    now = utcnow()
    values = {"id": chat_id, "type": chat_type, "title": title}
    await upsert(
        session,
        Chat,
        values | {"first_seen": now, "last_seen": now},
        ["id"],
        ["type", "title", "last_seen"],
    )


async def ensure_owner(
    session: AsyncSession, table: type[User] | type[Chat], owner_id: int, **defaults: Any
) -> None:
    """The user or chat row a write hangs on, created if this is its first write."""
    now = utcnow()
    await upsert(
        session, table, {"id": owner_id, "first_seen": now, "last_seen": now} | defaults, ["id"], []
    )


async def read_language(session: AsyncSession, user_id: int) -> str | None:
    """The user's /lang choice, else the language Telegram reported, else None."""
    row = (
        await session.execute(
            select(User.language, User.telegram_language).where(User.id == user_id)
        )
    ).first()
    return (row.language or row.telegram_language) if row else None


async def write_language(session: AsyncSession, user_id: int, language: str | None) -> None:
    await ensure_owner(session, User, user_id)
    user = await session.get(User, user_id)
    assert user is not None
    user.language = language


async def read_options(session: AsyncSession, user_id: int) -> dict[str, Any]:
    stored = (
        await session.execute(select(User.options).where(User.id == user_id))
    ).scalar_one_or_none()
    return dict(stored or {})


async def merge_options(
    session: AsyncSession, user_id: int, updates: dict[str, Any], removed: list[str]
) -> dict[str, Any]:
    """Merge options into the user's row, locked so concurrent writes keep each other's keys."""
    await ensure_owner(session, User, user_id)
    user = (
        await session.execute(select(User).where(User.id == user_id).with_for_update())
    ).scalar_one()
    user.options = merged(user.options, updates, removed)
    return dict(user.options)


def merged(
    current: dict[str, Any] | None, updates: dict[str, Any], removed: list[str]
) -> dict[str, Any]:
    """`current` with `updates` applied and the `removed` keys gone (a new dict, so the ORM sees a change)."""
    result = {**(current or {}), **updates}
    for name in removed:
        result.pop(name, None)
    return result


@dataclass(frozen=True)
class GroupSetup:
    """How a group holds conversations: its system prompt, and whether it shares one."""

    system_prompt: str | None = None
    shared: bool = False


async def read_system_prompt(session: AsyncSession, user_id: int) -> str | None:
    prompt: str | None = await session.scalar(select(User.system_prompt).where(User.id == user_id))
    return prompt


async def read_group_setup(session: AsyncSession, chat_id: int) -> GroupSetup:
    row = (
        await session.execute(
            select(Chat.system_prompt, Chat.shared_conversation).where(Chat.id == chat_id)
        )
    ).first()
    return GroupSetup(row.system_prompt, bool(row.shared_conversation)) if row else GroupSetup()


async def write_system_prompt(
    session: AsyncSession, table: type[User] | type[Chat], owner_id: int, prompt: str | None
) -> None:
    await ensure_owner(session, table, owner_id, **({"type": "group"} if table is Chat else {}))
    owner: User | Chat | None = await session.get(table, owner_id)
    assert owner is not None
    owner.system_prompt = prompt


async def write_shared_conversation(session: AsyncSession, chat_id: int, shared: bool) -> None:
    await ensure_owner(session, Chat, chat_id, type="group")
    chat = await session.get(Chat, chat_id)
    assert chat is not None
    chat.shared_conversation = shared


async def read_group_quota(session: AsyncSession, chat_id: int) -> int | None:
    quota: int | None = await session.scalar(select(Chat.daily_quota).where(Chat.id == chat_id))
    return quota


async def write_group_quota(session: AsyncSession, chat_id: int, quota: int | None) -> None:
    await ensure_owner(session, Chat, chat_id, type="group")
    chat = await session.get(Chat, chat_id)
    assert chat is not None
    chat.daily_quota = quota
