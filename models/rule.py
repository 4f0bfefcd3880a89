"""Admins' allow and deny lists of models, and the queries that keep them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, cast

from sqlalchemy import BigInteger, CheckConstraint, String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, upsert, utcnow
from models.database import Database

RuleKind = Literal["allow", "deny"]


class ModelRuleRow(Base):
    """An admin's allow or deny decision about one model id."""

    __tablename__ = "model_rules"
    __table_args__ = (CheckConstraint("rule IN ('allow', 'deny')", name="rule_kind"),)

    model_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    rule: Mapped[str] = mapped_column(String(8))
    added_by: Mapped[int | None] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


@dataclass(frozen=True)
class ModelRule:
    model_id: str
    rule: RuleKind
    added_by: int | None
    added_at: datetime


async def list_rules(session: AsyncSession) -> list[ModelRule]:
    rows = (await session.execute(select(ModelRuleRow).order_by(ModelRuleRow.model_id))).scalars()
    return [ModelRule(r.model_id, cast(RuleKind, r.rule), r.added_by, r.added_at) for r in rows]


async def write_rule(
    session: AsyncSession, model_id: str, rule: RuleKind, added_by: int | None
) -> None:
    await upsert(
        session,
        ModelRuleRow,
        {"model_id": model_id, "rule": rule, "added_by": added_by, "added_at": utcnow()},
        ["model_id"],
        ["rule", "added_by", "added_at"],
    )


async def delete_rule(session: AsyncSession, model_id: str) -> bool:
    result = await session.execute(delete(ModelRuleRow).where(ModelRuleRow.model_id == model_id))
    return bool(getattr(result, "rowcount", 0))


class ModelRules:
    """Admins' allow and deny lists of models."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def all(self) -> list[ModelRule]:
        async with self._db.session(read_only=True) as session:
            return await list_rules(session)

    async def set(self, model_id: str, kind: RuleKind, added_by: int | None) -> None:
        if kind not in ("allow", "deny"):
            raise ValueError(f"unknown rule {kind!r}")
        async with self._db.session() as session:
            await write_rule(session, model_id, kind, added_by)

    async def remove(self, model_id: str) -> bool:
        async with self._db.session() as session:
            return await delete_rule(session, model_id)
