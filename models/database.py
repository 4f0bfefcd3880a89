"""The one database object every store shares: the engine, its sessions, the read cache.

Each store (`models.preference.Preferences`, `models.conversation.Conversations`,
`models.usage.UsageLog`, `models.access.AccessBook`, `models.inbox.Inbox`,
`models.rule.ModelRules`) keeps its queries beside its rows and reaches the
database only through this object, so three things hold for all of them:

- Any failure to reach the database surfaces as `StoreUnavailable`: a write is
  either committed or reported as failed, never silently dropped.
- Reads on the request path go through one bounded TTL cache that writes in
  this process invalidate at once.
- What a request does when a read fails is decided in one place, `or_default`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

_UNREACHABLE = (OperationalError, DBAPIError, OSError, TimeoutError)

READ_ONLY = "hfbot_read_only"


def create_engine(
    url: str, *, echo: bool = False, timeout_s: float = 5.0, **kwargs: Any
) -> AsyncEngine:
    """An async engine tuned per backend so concurrent writers behave the same on both.

    SQLite: WAL, foreign keys on, and `BEGIN IMMEDIATE` for writes so two
    read-modify-write transactions serialize instead of failing with "database
    is locked"; reads (see `READ_ONLY`) begin deferred and never take the
    write lock, so /healthz and settings lookups never queue behind writers.
    PostgreSQL: pre-ping so a restarted server does not fail the next request.
    On both, connecting, waiting for a lock or a statement gives up after
    `timeout_s`, so a hung database costs a request seconds, not minutes.
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, echo=echo, connect_args={"timeout": timeout_s}, pool_timeout=timeout_s, **kwargs
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            read_only = conn.get_execution_options().get(READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("timeout", timeout_s)
    connect_args.setdefault("command_timeout", timeout_s)
    return create_async_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_timeout=timeout_s,
        connect_args=connect_args,
        **kwargs,
    )


class Database:
    """Sessions on one engine, and the read cache the stores share."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_ttl_s: float = 30.0,
        max_cached_owners: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = cache_ttl_s
        self.max_owners = max_cached_owners
        self.clock = clock
        self._cache: OrderedDict[tuple[str, int], dict[str, tuple[float, Any]]] = OrderedDict()
        self._on_rebind: list[Callable[[], None]] = []
        self._on_forget: list[Callable[[str, int, str | None], None]] = []
        self._on_drop: list[Callable[[str | None, int | None], None]] = []
        self.rebind(engine)

    def rebind(self, engine: AsyncEngine) -> None:
        """Use this engine from now on (tests point a running bot at a database that is gone);
        everything cached of the old one is dropped, in every store."""
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = async_sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self._cache.clear()
        for reset in self._on_rebind:
            reset()

    def on_rebind(self, reset: Callable[[], None]) -> None:
        """A store's own memory of the database (counts, holds) that a rebind must clear."""
        self._on_rebind.append(reset)

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def session(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success; unreachable databases become StoreUnavailable."""
        sessions = self._reads if read_only else self._sessions
        try:
            async with sessions() as session, session.begin():
                yield session
        except _UNREACHABLE as exc:
            raise StoreUnavailable(reason=type(exc).__name__) from exc

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a trivial query round-trips (for /healthz)."""
        async with self.session(read_only=True) as session:
            await session.execute(select(1))

    async def read_through(
        self, kind: str, owner: int, task: str, read: Callable[[AsyncSession], Awaitable[T]]
    ) -> T:
        """A cached read, or `read` in a session and the answer cached for the TTL.

        Past `max_cached_owners` the least recently used owner is dropped, so a
        bot seen by millions keeps a bounded cache.
        """
        key = (kind, owner)
        hit = self._cache.get(key, {}).get(task)
        if hit is not None and hit[0] > self.clock():
            self._cache.move_to_end(key)
            return cast(T, hit[1])
        async with self.session(read_only=True) as session:
            value = await read(session)
        self._cache.setdefault(key, {})[task] = (self.clock() + self.ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_owners:
            self._cache.popitem(last=False)
        return value

    def forget(self, kind: str, owner: int, task: str | None = None) -> None:
        """Drop what a write changed: one owner's entry for one task, or all of theirs; and
        tell whoever listens (`tell`)."""
        self.drop(kind, owner, task)
        self.tell(kind, owner, task)

    def tell(self, kind: str, owner: int, task: str | None = None) -> None:
        """Say that a write changed what others may have cached (the other replicas, through
        `bot.replicas.broadcast`), keeping what is cached here: a store that
        counted its own write in its cache calls this alone."""
        for listener in self._on_forget:
            listener(kind, owner, task)

    def drop(self, kind: str, owner: int, task: str | None = None) -> None:
        """Drop a cached read here only (another replica wrote it and told everyone)."""
        if task is None:
            self._cache.pop((kind, owner), None)
        else:
            self._cache.get((kind, owner), {}).pop(task, None)
        for listener in self._on_drop:
            listener(kind, owner)

    def drop_all(self) -> None:
        """Drop every cached read (what other replicas wrote may have gone unheard)."""
        self._cache.clear()
        for listener in self._on_drop:
            listener(None, None)

    def on_forget(self, listener: Callable[[str, int, str | None], None]) -> None:
        """Call `listener(kind, owner, task)` after each write's `forget` or `tell`."""
        self._on_forget.append(listener)

    def on_drop(self, listener: Callable[[str | None, int | None], None]) -> None:
        """A store's own cache (quota counts) that drops what this one drops: `listener(kind,
        owner)`, or `(None, None)` for everything."""
        self._on_drop.append(listener)


async def or_default(read: Awaitable[T], default: T, *, what: str) -> T:
    """A read on the request path, or `default` while the database cannot be reached.

    The one fallback policy: a request whose settings, options or history
    cannot be read still runs, on the bot's defaults, and the operator sees one
    WARNING naming what was not read. Writes never come through here: a write
    that fails is reported to the person.
    """
    try:
        return await read
    except StoreUnavailable:
        log.warning("database unavailable: %s not read, the defaults apply", what)
        return default
