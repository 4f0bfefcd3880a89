"""Admins' allow and deny lists of models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class ModelRuleRow(Base):
    """An admin's allow or deny decision about one model id."""

    __tablename__ = "model_rules"
    __table_args__ = (CheckConstraint("rule IN ('allow', 'deny')", name="rule_kind"),)

    model_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule: Mapped[str] = mapped_column(String(8))
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
