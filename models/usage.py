"""The request log behind /stats and quotas; it records what ran, never what was said."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, RowId, UTCDateTime, utcnow


class UsageRecord(Base):
    """One request: who, where, which task and model, how long, and how it ended."""

    __tablename__ = "usage_log"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    task: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(255))
    latency_ms: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(String(64))
    input_size: Mapped[int | None] = mapped_column(Integer)


@dataclass(frozen=True)
class TaskUsage:
    task: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class UsageSummary:
    since: datetime
    tasks: list[TaskUsage]
    active_users: int


async def count_requests(session: AsyncSession, user_id: int, since: datetime) -> int:
    """Requests by one user since a moment: the basis of quotas."""
    stmt = (
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.user_id == user_id, UsageRecord.created_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())


async def summarize_usage(session: AsyncSession, since: datetime) -> UsageSummary:
    """Requests, errors and latency percentiles per task since a moment (for /stats).

    Percentiles are computed here rather than in SQL so SQLite and
    PostgreSQL give the same answer.
    """
    rows = (
        await session.execute(
            select(
                UsageRecord.task, UsageRecord.latency_ms, UsageRecord.ok, UsageRecord.user_id
            ).where(UsageRecord.created_at >= since)
        )
    ).all()
    by_task: dict[str, list[Any]] = {}
    for row in rows:
        by_task.setdefault(row.task, []).append(row)
    tasks = [
        TaskUsage(
            task=task,
            requests=len(items),
            errors=sum(1 for item in items if not item.ok),
            p50_ms=percentile([item.latency_ms for item in items], 0.50),
            p95_ms=percentile([item.latency_ms for item in items], 0.95),
        )
        for task, items in sorted(by_task.items())
    ]
    active = len({row.user_id for row in rows if row.user_id is not None})
    return UsageSummary(since=since, tasks=tasks, active_users=active)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: always a latency that was actually observed."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]
