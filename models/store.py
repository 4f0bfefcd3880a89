"""SettingsStore: the only code that reads or writes the database.

It knows nothing of Telegram or transformers. Parameter validation is handed
in as a callable (the task registry's rules), so values are checked on every
write and nothing invalid is ever stored. Reads on the request path go through
a small TTL cache that writes in this process invalidate at once.

Any failure to reach the database surfaces as `StoreUnavailable`, which
handlers turn into "using defaults" on reads and a clear refusal on writes:
a write is either committed or reported as failed, never silently dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import StoreUnavailable, UserFacingError
from models.base import utcnow
from models.preference import ChatDefault, UserPreference
from models.rule import ModelRuleRow
from models.usage import UsageRecord
from models.user import Chat, User


class Rules(Protocol):
    """What the store needs of the parameter registry: validation, nothing else."""

    def validate(self, task: str, params: Mapping[str, object]) -> dict[str, Any]: ...

    def validate_options(self, options: Mapping[str, object]) -> dict[str, Any]: ...


Source = Literal["user", "chat", "bot"]
RuleKind = Literal["allow", "deny"]

_UNREACHABLE = (OperationalError, DBAPIError, OSError, TimeoutError)


@dataclass(frozen=True)
class _Scope:
    """Whose choices a table holds: users' own, or groups' defaults."""

    kind: str
    table: type
    owner_column: str
    owner_table: type
    owner_defaults: dict[str, Any]


_USER = _Scope("user", UserPreference, "user_id", User, {})
# A group first met through an admin's command; touch_chat fills in its real type and title.
_CHAT = _Scope("chat", ChatDefault, "chat_id", Chat, {"type": "group"})


def _new_user(user_id: int) -> dict[str, Any]:
    now = utcnow()
    return {"id": user_id, "first_seen": now, "last_seen": now}


@dataclass(frozen=True)
class ResolvedSettings:
    """What one request runs with, and where each choice came from (shown by /settings)."""

    model_id: str
    model_source: Source
    params: dict[str, Any]
    param_sources: dict[str, Source] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelRule:
    model_id: str
    rule: RuleKind
    added_by: int | None
    added_at: datetime


@dataclass(frozen=True)
class Choice:
    """A stored model/params choice for one task, as cached in memory."""

    model_id: str | None
    params: dict[str, Any]


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


def create_engine(url: str, *, echo: bool = False, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned per backend so concurrent writers behave the same on both.

    SQLite: WAL, foreign keys on, and `BEGIN IMMEDIATE` so two read-modify-write
    transactions serialize instead of failing with "database is locked".
    PostgreSQL: a short connect timeout so "database down" is reported in
    seconds, and pre-ping so a restarted server does not fail the next request.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", 5)
    return create_async_engine(
        url, echo=echo, pool_pre_ping=True, connect_args=connect_args, **kwargs
    )


class SettingsStore:
    """Async access to users, their per-task choices, group defaults, usage and model rules."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        rules: Rules,
        cache_ttl_s: float = 30.0,
        touch_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._rules = rules
        self._validate = rules.validate
        self._ttl = cache_ttl_s
        self._touch_interval = touch_interval_s
        self._clock = clock
        self._cache: dict[tuple[str, int, str], tuple[float, Any]] = {}
        self._touched: dict[tuple[str, int], float] = {}

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success; unreachable databases become StoreUnavailable."""
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except _UNREACHABLE as exc:
            raise StoreUnavailable(reason=type(exc).__name__) from exc

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a trivial query round-trips (for /healthz)."""
        async with self._session() as session:
            await session.execute(select(1))

    # -- cache ---------------------------------------------------------------

    def _cached(self, key: tuple[str, int, str]) -> tuple[bool, Any]:
        hit = self._cache.get(key)
        if hit is not None and hit[0] > self._clock():
            return True, hit[1]
        return False, None

    def _remember(self, key: tuple[str, int, str], value: Any) -> Any:
        self._cache[key] = (self._clock() + self._ttl, value)
        return value

    def _forget(self, kind: str, owner: int, task: str | None = None) -> None:
        for key in [k for k in self._cache if k[0] == kind and k[1] == owner]:
            if task is None or key[2] == task:
                del self._cache[key]

    # -- users and chats -----------------------------------------------------

    def _upsert(
        self,
        session: AsyncSession,
        model: type,
        values: dict[str, Any],
        keys: list[str],
        update: list[str],
    ) -> Any:
        """INSERT … ON CONFLICT DO UPDATE in the dialect at hand (SQLite and PostgreSQL share the syntax)."""
        dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(model).values(**values)
        if update:
            stmt = stmt.on_conflict_do_update(
                index_elements=keys, set_={name: stmt.excluded[name] for name in update}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=keys)
        return session.execute(stmt)

    def _due(self, kind: str, ident: int) -> bool:
        now = self._clock()
        last = self._touched.get((kind, ident))
        if last is not None and now - last < self._touch_interval:
            return False
        self._touched[(kind, ident)] = now
        return True

    async def touch_user(self, user_id: int, telegram_language: str | None = None) -> None:
        """Record that a user was seen; written at most once per interval per user."""
        if not self._due("user", user_id):
            return
        now = utcnow()
        async with self._session() as session:
            await self._upsert(
                session,
                User,
                {
                    "id": user_id,
                    "telegram_language": telegram_language,
                    "first_seen": now,
                    "last_seen": now,
                },
                ["id"],
                ["telegram_language", "last_seen"],
            )
        self._forget("lang", user_id)

    async def touch_chat(self, chat_id: int, chat_type: str, title: str | None = None) -> None:
        """Record that a chat was seen; written at most once per interval per chat."""
        if not self._due("chat", chat_id):
            return
        now = utcnow()
        async with self._session() as session:
            await self._upsert(
                session,
                Chat,
                {
                    "id": chat_id,
                    "type": chat_type,
                    "title": title,
                    "first_seen": now,
                    "last_seen": now,
                },
                ["id"],
                ["type", "title", "last_seen"],
            )

    async def get_language(self, user_id: int) -> str | None:
        """The user's /lang choice, else the language Telegram reported, else None."""
        key = ("lang", user_id, "")
        hit, value = self._cached(key)
        if hit:
            return value
        async with self._session() as session:
            row = (
                await session.execute(
                    select(User.language, User.telegram_language).where(User.id == user_id)
                )
            ).first()
        return self._remember(key, (row.language or row.telegram_language) if row else None)

    async def set_language(self, user_id: int, language: str | None) -> None:
        """Set (or with None, clear) the user's preferred reply language."""
        async with self._session() as session:
            await self._upsert(session, User, _new_user(user_id), ["id"], [])
            user = await session.get(User, user_id)
            assert user is not None
            user.language = language
        self._forget("lang", user_id)

    async def get_options(self, user_id: int) -> dict[str, Any]:
        """The user's stored options (only what they set; defaults live in the registry)."""
        key = ("opts", user_id, "")
        hit, value = self._cached(key)
        if hit:
            return value
        async with self._session() as session:
            stored = (
                await session.execute(select(User.options).where(User.id == user_id))
            ).scalar_one_or_none()
        return self._remember(key, dict(stored or {}))

    async def set_options(self, user_id: int, options: Mapping[str, object]) -> dict[str, Any]:
        """Merge validated options; a None value removes that option. Returns what is stored."""
        clean = self._rules.validate_options({k: v for k, v in options.items() if v is not None})
        removed = [k for k, v in options.items() if v is None]
        async with self._session() as session:
            await self._upsert(session, User, _new_user(user_id), ["id"], [])
            user = (
                await session.execute(select(User).where(User.id == user_id).with_for_update())
            ).scalar_one()
            user.options = _merged(user.options, clean, removed)
            stored = dict(user.options)
        self._forget("opts", user_id)
        return stored

    # -- per-task choices ----------------------------------------------------

    async def set_user_model(self, user_id: int, task: str, model_id: str | None) -> None:
        """Choose (or with None, forget) this user's model for a task."""
        await self._set_model(_USER, user_id, task, model_id)

    async def set_user_params(
        self, user_id: int, task: str, params: Mapping[str, object]
    ) -> dict[str, Any]:
        """Merge validated parameters into this user's choice; a None value removes that key.

        Returns the parameters now stored. The row is locked for the merge so
        concurrent /set commands from one user never lose each other's values.
        """
        return await self._set_params(_USER, user_id, task, params)

    async def reset_user(self, user_id: int, task: str | None = None) -> int:
        """Forget this user's choices for one task or all tasks; returns how many were removed."""
        return await self._reset(_USER, user_id, task)

    async def set_chat_model(
        self, chat_id: int, task: str, model_id: str | None, *, by: int | None
    ) -> None:
        """Set a group's default model for a task (the caller checked the admin right)."""
        await self._set_model(_CHAT, chat_id, task, model_id, updated_by=by)

    async def set_chat_params(
        self, chat_id: int, task: str, params: Mapping[str, object], *, by: int | None
    ) -> dict[str, Any]:
        """Merge validated parameters into a group's defaults; a None value removes that key."""
        return await self._set_params(_CHAT, chat_id, task, params, updated_by=by)

    async def reset_chat(self, chat_id: int, task: str | None = None) -> int:
        """Forget a group's defaults for one task or all tasks."""
        return await self._reset(_CHAT, chat_id, task)

    async def _set_model(
        self, scope: _Scope, owner: int, task: str, model_id: str | None, **extra: Any
    ) -> None:
        self._validate(task, {})
        async with self._session() as session:
            row = await self._owned_choice(session, scope, owner, task)
            row.model_id = model_id
            for name, value in extra.items():
                setattr(row, name, value)
        self._forget(scope.kind, owner, task)

    async def _set_params(
        self, scope: _Scope, owner: int, task: str, params: Mapping[str, object], **extra: Any
    ) -> dict[str, Any]:
        clean = self._validate(task, {k: v for k, v in params.items() if v is not None})
        removed = [k for k, v in params.items() if v is None]
        async with self._session() as session:
            row = await self._owned_choice(session, scope, owner, task)
            row.params = _merged(row.params, clean, removed)
            for name, value in extra.items():
                setattr(row, name, value)
            stored = dict(row.params)
        self._forget(scope.kind, owner, task)
        return stored

    async def _reset(self, scope: _Scope, owner: int, task: str | None) -> int:
        if task is not None:
            self._validate(task, {})
        async with self._session() as session:
            stmt = delete(scope.table).where(getattr(scope.table, scope.owner_column) == owner)
            if task is not None:
                stmt = stmt.where(scope.table.task == task)
            result = await session.execute(stmt)
        self._forget(scope.kind, owner, task)
        return result.rowcount or 0

    async def _owned_choice(
        self, session: AsyncSession, scope: _Scope, owner: int, task: str
    ) -> Any:
        """The owner's row for a task (owner and row created if missing), locked for this transaction."""
        now = utcnow()
        owner_row = {"id": owner, "first_seen": now, "last_seen": now} | scope.owner_defaults
        await self._upsert(session, scope.owner_table, owner_row, ["id"], [])
        return await self._locked_choice(
            session, scope.table, **{scope.owner_column: owner, "task": task}
        )

    async def _locked_choice(self, session: AsyncSession, model: type, **key: Any) -> Any:
        """The row for this key, created if missing, locked until the transaction ends."""
        await self._upsert(session, model, {**key, "params": {}}, list(key), [])
        stmt = select(model).filter_by(**key).with_for_update()
        return (await session.execute(stmt)).scalar_one()

    async def user_choice(self, user_id: int, task: str) -> Choice | None:
        return await self._choice(_USER, user_id, task)

    async def chat_choice(self, chat_id: int, task: str) -> Choice | None:
        return await self._choice(_CHAT, chat_id, task)

    async def _choice(self, scope: _Scope, owner: int, task: str) -> Choice | None:
        key = (scope.kind, owner, task)
        hit, value = self._cached(key)
        if hit:
            return value
        table = scope.table
        async with self._session() as session:
            row = (
                await session.execute(
                    select(table.model_id, table.params).where(
                        getattr(table, scope.owner_column) == owner, table.task == task
                    )
                )
            ).first()
        return self._remember(key, Choice(row.model_id, dict(row.params or {})) if row else None)

    async def resolve(
        self,
        user_id: int,
        chat_id: int | None,
        task: str,
        *,
        default_model: str,
        default_params: Mapping[str, Any],
    ) -> ResolvedSettings:
        """What a request runs with: the user's choice > the chat's default > the bot's default.

        Parameters resolve key by key, so a user who only set `temperature`
        still inherits the group's `max_new_tokens`. Stored values are
        re-validated, so a cap an operator lowered later applies to old rows.
        """
        layers: list[tuple[Source, Choice | None]] = []
        if chat_id is not None and chat_id != user_id:
            layers.append(("chat", await self.chat_choice(chat_id, task)))
        layers.append(("user", await self.user_choice(user_id, task)))
        model_id: str = default_model
        model_source: Source = "bot"
        params = dict(default_params)
        sources: dict[str, Source] = dict.fromkeys(params, "bot")
        for source, choice in layers:
            if choice is None:
                continue
            if choice.model_id:
                model_id, model_source = choice.model_id, source
            for name, value in choice.params.items():
                if _still_valid(self._validate, task, name, value):
                    params[name], sources[name] = value, source
        return ResolvedSettings(model_id, model_source, params, sources)

    # -- usage -----------------------------------------------------------------

    async def log_usage(
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
    ) -> None:
        async with self._session() as session:
            session.add(
                UsageRecord(
                    user_id=user_id,
                    chat_id=chat_id,
                    task=task,
                    model_id=model_id,
                    latency_ms=latency_ms,
                    ok=ok,
                    error=error,
                    input_size=input_size,
                )
            )

    async def count_requests(self, user_id: int, since: datetime) -> int:
        """Requests by one user since a moment: the basis of quotas."""
        async with self._session() as session:
            return (
                await session.execute(
                    select(func.count())
                    .select_from(UsageRecord)
                    .where(UsageRecord.user_id == user_id, UsageRecord.created_at >= since)
                )
            ).scalar_one()

    async def usage_summary(self, since: datetime) -> UsageSummary:
        """Requests, errors and latency percentiles per task since a moment (for /stats).

        Percentiles are computed here rather than in SQL so SQLite and
        PostgreSQL give the same answer.
        """
        async with self._session() as session:
            rows = (
                await session.execute(
                    select(
                        UsageRecord.task,
                        UsageRecord.latency_ms,
                        UsageRecord.ok,
                        UsageRecord.user_id,
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
                p50_ms=_percentile([item.latency_ms for item in items], 0.50),
                p95_ms=_percentile([item.latency_ms for item in items], 0.95),
            )
            for task, items in sorted(by_task.items())
        ]
        active = len({row.user_id for row in rows if row.user_id is not None})
        return UsageSummary(since=since, tasks=tasks, active_users=active)

    # -- model rules -----------------------------------------------------------

    async def list_model_rules(self) -> list[ModelRule]:
        async with self._session() as session:
            rows = (
                await session.execute(select(ModelRuleRow).order_by(ModelRuleRow.model_id))
            ).scalars()
            return [ModelRule(r.model_id, r.rule, r.added_by, r.added_at) for r in rows]  # type: ignore[arg-type]

    async def set_model_rule(self, model_id: str, rule: RuleKind, added_by: int | None) -> None:
        if rule not in ("allow", "deny"):
            raise ValueError(f"unknown rule {rule!r}")
        async with self._session() as session:
            await self._upsert(
                session,
                ModelRuleRow,
                {"model_id": model_id, "rule": rule, "added_by": added_by, "added_at": utcnow()},
                ["model_id"],
                ["rule", "added_by", "added_at"],
            )

    async def remove_model_rule(self, model_id: str) -> bool:
        async with self._session() as session:
            result = await session.execute(
                delete(ModelRuleRow).where(ModelRuleRow.model_id == model_id)
            )
        return bool(result.rowcount)


def _merged(
    current: Mapping[str, Any] | None, updates: Mapping[str, Any], removed: list[str]
) -> dict[str, Any]:
    merged = {**(current or {}), **updates}
    for name in removed:
        merged.pop(name, None)
    return merged


def _still_valid(
    validate: Callable[[str, Mapping[str, object]], Any], task: str, name: str, value: Any
) -> bool:
    try:
        validate(task, {name: value})
    except UserFacingError:
        return False
    return True


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile: always a latency that was actually observed."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]
