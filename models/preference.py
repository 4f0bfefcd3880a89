"""What a user, or a group's admins, chose for a task: a model and generation parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JsonDict, UTCDateTime, utcnow


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
