"""The request log behind /stats and quotas; it records what ran, never what was said."""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, false, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, RowId, UTCDateTime, utcnow
from models.database import Database


class UsageRecord(Base):
    """One request: who, where, which task and model, how long, and how it ended."""

    __tablename__ = "usage_log"
    # One person's rows in time order: a quota check reads only today's rows of one person.
    # It also serves every lookup by person alone, so user_id needs no index of its own.
    __table_args__ = (Index("ix_usage_log_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    task: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(255))
    latency_ms: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool] = mapped_column(Boolean)
    # Whether it counts against its daily quota: it was answered, or a model did work the
    # person got before it failed (a stream that showed text, a voice note transcribed).
    charged: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
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
    """Totals since a moment; the percentiles are over every request (None when there were none)."""

    since: datetime
    tasks: list[TaskUsage]
    active_users: int
    p50_ms: float | None = None
    p95_ms: float | None = None

    @property
    def requests(self) -> int:
        return sum(task.requests for task in self.tasks)

    @property
    def errors(self) -> int:
        return sum(task.errors for task in self.tasks)


# The windows /stats offers, and how finely each is cut: about 24 to 30 buckets, few
# enough to read on a phone. `step_for` picks the same cuts for any other window.
WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
STEPS: tuple[tuple[timedelta, timedelta], ...] = (
    (timedelta(days=2), timedelta(hours=1)),
    (timedelta(days=14), timedelta(hours=6)),
    (timedelta.max, timedelta(days=1)),
)


def step_for(span: timedelta) -> timedelta:
    """The bucket width for a window: hours for a day, quarter days for a week, days beyond."""
    return next(step for longest, step in STEPS if span <= longest)


@dataclass(frozen=True)
class Bucket:
    """One time slice of the usage log; latencies are None when nothing ran in it."""

    start: datetime
    requests: int
    errors: int
    p50_ms: float | None
    p95_ms: float | None
    active_users: int


@dataclass(frozen=True)
class UsageSeries:
    """The usage log cut into equal buckets from `since` to `until`, all tasks and per task."""

    since: datetime
    until: datetime
    step: timedelta
    total: list[Bucket]
    by_task: dict[str, list[Bucket]]
    summary: UsageSummary

    @property
    def starts(self) -> list[datetime]:
        return [bucket.start for bucket in self.total]

    @property
    def until_edge(self) -> datetime:
        """Where the last bucket ends (at or after `until`)."""
        return self.total[-1].start + self.step


async def count_requests(session: AsyncSession, user_id: int, since: datetime) -> int:
    """Requests by one user since a moment: the basis of quotas."""
    stmt = (
        select(func.count())
        .select_from(UsageRecord)
        .where(UsageRecord.user_id == user_id, UsageRecord.created_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())


async def latest_task(
    session: AsyncSession, user_id: int, chat_id: int, tasks: Sequence[str]
) -> str | None:
    """Which of `tasks` this person asked for last in this chat; None if none of them.

    What `/set <param> <value>` without a task applies to. The (user_id, created_at)
    index walks this person's rows newest first.
    """
    stmt = (
        select(UsageRecord.task)
        .where(
            UsageRecord.user_id == user_id,
            UsageRecord.chat_id == chat_id,
            UsageRecord.task.in_(tasks),
        )
        .order_by(UsageRecord.created_at.desc(), UsageRecord.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


def counted_as(user_id: int | None, chat_id: int | None) -> int | None:
    """Whose daily quota a request counts against: its person's, or for one sent as a chat
    (a negative id: an anonymous admin, a channel's post, someone posting as a channel),
    the quota of the chat it was posted in, shared by everyone who posts there as a chat.

    Telegram hides who posts as a chat (`from` is one stand-in account for all of them),
    so the quota cannot follow the person; following the chat spoken as would give one
    person with ten channels ten quotas. Shared per chat posted in, it gives them one.
    """
    if user_id is not None and user_id < 0 and chat_id is not None:
        return chat_id
    return user_id


async def count_served(
    session: AsyncSession, counted: int, since: datetime, *, chat_id: int | None = None
) -> int:
    """Requests charged since a moment against one quota (`counted_as`), in one chat if
    given: a person's own, or (a negative id) everything sent as a chat there.

    What daily quotas count: the work a person got (`UsageRecord.charged`); a refusal,
    or a failure before any model work reached them, costs nothing.
    The (user_id, created_at) index keeps a person's count to their rows since `since`.
    """
    whose = (
        (UsageRecord.chat_id == counted) & (UsageRecord.user_id < 0)
        if counted < 0
        else UsageRecord.user_id == counted
    )
    stmt = (
        select(func.count())
        .select_from(UsageRecord)
        .where(whose, UsageRecord.created_at >= since, UsageRecord.charged.is_(True))
    )
    if chat_id is not None:
        stmt = stmt.where(UsageRecord.chat_id == chat_id)
    return int((await session.execute(stmt)).scalar_one())


def _summary(since: datetime, rows: Sequence[Any]) -> UsageSummary:
    """Requests, errors and latency percentiles per task and over all rows."""
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
    latencies = [row.latency_ms for row in rows]
    return UsageSummary(
        since=since,
        tasks=tasks,
        active_users=active,
        p50_ms=percentile(latencies, 0.50) if latencies else None,
        p95_ms=percentile(latencies, 0.95) if latencies else None,
    )


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: always a latency that was actually observed."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


async def usage_series(
    session: AsyncSession,
    since: datetime,
    until: datetime,
    step: timedelta,
    *,
    chat_id: int | None = None,
) -> UsageSeries:
    """The usage log between two moments in buckets of `step` (one chat's only, if given).

    Buckets start at `since` rounded down to a whole step (in UTC), so hourly
    buckets begin on the hour. Percentiles are computed here rather than in
    SQL, so SQLite and PostgreSQL give the same figures.
    """
    origin = _floor(since, step)
    stmt = select(
        UsageRecord.created_at,
        UsageRecord.task,
        UsageRecord.latency_ms,
        UsageRecord.ok,
        UsageRecord.user_id,
    ).where(UsageRecord.created_at >= since, UsageRecord.created_at < until)
    if chat_id is not None:
        stmt = stmt.where(UsageRecord.chat_id == chat_id)
    rows = (await session.execute(stmt)).all()
    count = max(1, math.ceil((until - origin) / step))
    slots: list[list[Any]] = [[] for _ in range(count)]
    for row in rows:
        slots[min(count - 1, int((row.created_at - origin) / step))].append(row)
    starts = [origin + index * step for index in range(count)]
    tasks = sorted({row.task for row in rows})
    return UsageSeries(
        since=since,
        until=until,
        step=step,
        total=[_bucket(start, slot) for start, slot in zip(starts, slots, strict=True)],
        by_task={
            task: [
                _bucket(start, [row for row in slot if row.task == task])
                for start, slot in zip(starts, slots, strict=True)
            ]
            for task in tasks
        },
        summary=_summary(since, rows),
    )


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + ((moment - epoch) // step) * step


def _bucket(start: datetime, rows: list[Any]) -> Bucket:
    latencies = [row.latency_ms for row in rows]
    return Bucket(
        start=start,
        requests=len(rows),
        errors=sum(1 for row in rows if not row.ok),
        p50_ms=percentile(latencies, 0.50) if latencies else None,
        p95_ms=percentile(latencies, 0.95) if latencies else None,
        active_users=len({row.user_id for row in rows if row.user_id is not None}),
    )


SERVED = "served"  # what a replica says when it logged an answered request (`Database.tell`)


@dataclass(frozen=True)
class QuotaRoom:
    """One daily limit a request must fit in: its size, the chat it counts in (None:
    everywhere) and the answered requests logged against it."""

    limit: int
    chat_id: int | None
    answered: int


@dataclass(eq=False)
class QuotaHold:
    """A request counted against its quota until it is logged (compared by identity)."""

    counted: int
    chat_id: int | None
    for_s: float
    id: str = field(default_factory=lambda: uuid.uuid4().hex)


class QuotaHolds(Protocol):
    """Where holds are kept: this process (`LocalHolds`), or every replica's together."""

    async def take(self, hold: QuotaHold, rooms: Sequence[QuotaRoom]) -> int | None:
        """Hold `hold` if every room has space for it (answered plus live holds in its
        chat below its limit): None; else the index of the first room without space. The
        look and the take are one step, so two requests cannot both take the last place."""
        ...

    async def count(self, counted: int, chat_id: int | None) -> int:
        """Live holds on one quota (in one chat, if given)."""
        ...

    async def release(self, hold: QuotaHold) -> None: ...


class LocalHolds:
    """Holds in this process's memory: each lapses `for_s` after it was taken."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._held: dict[int, list[tuple[QuotaHold, float]]] = {}

    def _live(self, counted: int) -> list[tuple[QuotaHold, float]]:
        now = self._clock()
        live = [(hold, ends) for hold, ends in self._held.get(counted, []) if ends > now]
        if live:
            self._held[counted] = live
        else:
            self._held.pop(counted, None)
        return live

    def _held_in(self, counted: int, chat_id: int | None) -> int:
        return sum(1 for hold, _ in self._live(counted) if chat_id is None or hold.chat_id == chat_id)

    async def take(self, hold: QuotaHold, rooms: Sequence[QuotaRoom]) -> int | None:
        for index, room in enumerate(rooms):
            if room.answered + self._held_in(hold.counted, room.chat_id) >= room.limit:
                return index
        self._held.setdefault(hold.counted, []).append((hold, self._clock() + hold.for_s))
        return None

    async def count(self, counted: int, chat_id: int | None) -> int:
        return self._held_in(counted, chat_id)

    async def release(self, hold: QuotaHold) -> None:
        held = [(h, ends) for h, ends in self._held.get(hold.counted, []) if h is not hold]
        if held:
            self._held[hold.counted] = held
        else:
            self._held.pop(hold.counted, None)


class UsageLog:
    """The request log, and the quota counts read from it.

    Quotas are asked before every model command, so the count of answered rows
    is cached per (person, chat) for the database's cache TTL, and requests that
    passed a quota check but are not logged yet are held (`hold_served`), in this
    process or, with replicas, in Redis for all of them (`share_holds`).
    """

    def __init__(self, database: Database) -> None:
        self._db = database
        self._holds: QuotaHolds = LocalHolds(database.clock)
        database.on_rebind(self._reset)
        database.on_drop(self._dropped)
        self._reset()

    def _reset(self) -> None:
        self._served: OrderedDict[tuple[int, int | None], _ServedCount] = OrderedDict()
        self._served_reads: dict[tuple[int, int | None], bool] = {}
        if isinstance(self._holds, LocalHolds):
            self._holds = LocalHolds(self._db.clock)

    def share_holds(self, holds: QuotaHolds) -> None:
        """Keep holds where every replica counts them (`bot.replicas.shared_quota`)."""
        self._holds = holds

    def _dropped(self, kind: str | None, owner: int | None) -> None:
        """Another replica logged an answered request (or may have, unheard): the counts
        cached here miss it."""
        if kind is None:
            self._served.clear()
            self._served_reads = dict.fromkeys(self._served_reads, True)
        elif kind == SERVED:
            for key in [key for key in self._served if key[0] == owner]:
                del self._served[key]
            for key in self._served_reads:
                if key[0] == owner:
                    self._served_reads[key] = True

    async def log(
        self,
        *,
        user_id: int | None,
        chat_id: int | None,
        task: str,
        model_id: str,
        latency_ms: float,
        ok: bool,
        error: str | None = None,
        input_size: int | None = None,
        charged: bool | None = None,
    ) -> None:
        """Log one request; one `charged` (by default: answered) also counts at once in the
        cached quota counts, here and (told through the database) on other replicas.

        It also releases the hold (`hold_served`) this task took, if any,
        whether or not the row can be written: the request is over either way.
        """
        created_at = utcnow()
        try:
            async with self._db.session() as session:
                session.add(
                    UsageRecord(
                        created_at=created_at,
                        user_id=user_id,
                        chat_id=chat_id,
                        task=task,
                        model_id=model_id,
                        latency_ms=latency_ms,
                        ok=ok,
                        charged=ok if charged is None else charged,
                        error=error,
                        input_size=input_size,
                    )
                )
            counted = counted_as(user_id, chat_id)
            if (ok if charged is None else charged) and counted is not None:
                self._count_served(counted, chat_id, created_at)
                self._db.tell(SERVED, counted)
        finally:
            # Only now: until the row is in (and counted), the hold is what counts it.
            hold = _HOLD.get()
            if hold is not None:
                _HOLD.set(None)
                await self._holds.release(hold)

    async def hold_served(
        self,
        counted: int,
        chat_id: int | None,
        rooms: Sequence[QuotaRoom],
        *,
        for_s: float,
    ) -> int | None:
        """Count a request against its quotas until this task logs its usage, if it fits
        in every room: None; else the index of the first room it does not fit in.

        `counted` is the quota it counts against (`counted_as`).

        Without it, a person's next request could pass while the last one still
        runs (or is answered but not yet logged) and overshoot the quota; and the
        check is one step with the hold, so two requests arriving together (on one
        replica or two) cannot both take the last place. The hold belongs to the
        asyncio task handling the request (a context variable), so the `log` of that
        same request releases exactly it; one never released (a crash skips the log)
        lapses after `for_s`.
        """
        hold = QuotaHold(counted, chat_id, for_s)
        refused = await self._holds.take(hold, rooms)
        if refused is None:
            _HOLD.set(hold)
        return refused

    async def answered_since(
        self, counted: int, since: datetime, *, chat_id: int | None = None
    ) -> int:
        """Requests answered against one quota since a moment (in one chat, if given), as the
        usage log has them: each answered request this process logs adds one to the cached
        counts at once, and one another replica logs drops them (through the database's
        listeners); the TTL bounds how long a write nobody heard of goes unseen. A read
        that a log write overtook is returned but not cached, since it may or may not
        include that row."""
        return await self._served_rows(counted, since, chat_id)

    async def held(self, counted: int, chat_id: int | None = None) -> int:
        """Requests counted against one quota (in one chat, if given) that are not logged yet
        (`hold_served`)."""
        return await self._holds.count(counted, chat_id)

    async def _served_rows(self, user_id: int, since: datetime, chat_id: int | None) -> int:
        key = (user_id, chat_id)
        hit = self._served.get(key)
        if hit is not None and hit.since == since and hit.expires > self._db.clock():
            self._served.move_to_end(key)
            return hit.count
        self._served_reads[key] = False
        try:
            async with self._db.session(read_only=True) as session:
                count = await count_served(session, user_id, since, chat_id=chat_id)
        finally:
            overtaken = self._served_reads.pop(key, True)
        if not overtaken:
            self._served[key] = _ServedCount(since, self._db.clock() + self._db.ttl, count)
            self._served.move_to_end(key)
            while len(self._served) > self._db.max_owners:
                self._served.popitem(last=False)
        return count

    def _count_served(self, user_id: int, chat_id: int | None, created_at: datetime) -> None:
        for key in dict.fromkeys([(user_id, None), (user_id, chat_id)]):
            if key in self._served_reads:
                self._served_reads[key] = True
            hit = self._served.get(key)
            if hit is not None and created_at >= hit.since:
                hit.count += 1

    async def count_requests(self, user_id: int, since: datetime) -> int:
        """Requests by one user since a moment: the basis of quotas."""
        async with self._db.session(read_only=True) as session:
            return await count_requests(session, user_id, since)

    async def latest_task(self, user_id: int, chat_id: int, tasks: Sequence[str]) -> str | None:
        """Which of `tasks` this person asked for last in this chat (from the usage log)."""
        async with self._db.session(read_only=True) as session:
            return await latest_task(session, user_id, chat_id, tasks)

    async def series(
        self, since: datetime, until: datetime, step: timedelta, *, chat_id: int | None = None
    ) -> UsageSeries:
        """Requests, errors, latency and active users per time bucket (the /stats chart)."""
        async with self._db.session(read_only=True) as session:
            return await usage_series(session, since, until, step, chat_id=chat_id)


# The hold the request handled by the current asyncio task took (see `hold_served`).
_HOLD: ContextVar[QuotaHold | None] = ContextVar("hfbot_quota_hold", default=None)


@dataclass
class _ServedCount:
    """A cached count of answered requests since `since`, good until `expires` (the database's
    clock)."""

    since: datetime
    expires: float
    count: int
