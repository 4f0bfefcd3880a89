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

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal, Protocol, TypeVar, cast

from sqlalchemy import event, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bot.errors import StoreUnavailable, UserFacingError
from models import access, conversation, inbox, preference, rule, usage, user
from models.access import Invite
from models.base import utcnow
from models.conversation import OngoingConversation
from models.inbox import Unanswered
from models.preference import CHAT_SCOPE, USER_SCOPE, Choice, Scope
from models.rule import ModelRule, RuleKind
from models.usage import UsageRecord, UsageSeries
from models.user import Chat, GroupSetup, User


class Rules(Protocol):
    """What the store needs of the parameter registry: validation, nothing else."""

    def validate(self, task: str, params: Mapping[str, object]) -> dict[str, Any]: ...

    def validate_options(self, options: Mapping[str, object]) -> dict[str, Any]: ...


Source = Literal["user", "chat", "bot"]
T = TypeVar("T")

_UNREACHABLE = (OperationalError, DBAPIError, OSError, TimeoutError)


@dataclass(frozen=True)
class ResolvedSettings:
    """What one request runs with, and where each choice came from (shown by /settings)."""

    model_id: str
    model_source: Source
    params: dict[str, Any]
    param_sources: dict[str, Source] = field(default_factory=dict)


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


class SettingsStore:
    """Async access to users, their per-task choices, group defaults, usage and model rules.

    The queries live beside their rows (`models.user`, `models.preference`,
    `models.usage`, `models.rule`); this class owns what they share: sessions,
    validation, the read cache and turning a lost database into StoreUnavailable.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        rules: Rules,
        cache_ttl_s: float = 30.0,
        touch_interval_s: float = 60.0,
        max_cached_owners: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: OrderedDict[tuple[str, int], dict[str, tuple[float, Any]]] = OrderedDict()
        self.rebind(engine)
        self._rules = rules
        self._validate = rules.validate
        self._ttl = cache_ttl_s
        self._touch_interval = touch_interval_s
        self._max_owners = max_cached_owners
        self._clock = clock
        self._touched: OrderedDict[tuple[str, int], float] = OrderedDict()
        self.restricted_last_seen: bool | None = None

    def rebind(self, engine: AsyncEngine) -> None:
        """Use this engine from now on (tests point a running bot at a database that is gone)."""
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = async_sessionmaker(
            engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        self._cache.clear()
        self._served: OrderedDict[tuple[int, int | None], _ServedCount] = OrderedDict()
        self._served_reads: dict[tuple[int, int | None], bool] = {}
        self._held: dict[int, list[_Hold]] = {}

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _session(self, *, read_only: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success; unreachable databases become StoreUnavailable."""
        sessions = self._reads if read_only else self._sessions
        try:
            async with sessions() as session, session.begin():
                yield session
        except _UNREACHABLE as exc:
            raise StoreUnavailable(reason=type(exc).__name__) from exc

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a trivial query round-trips (for /healthz)."""
        async with self._session(read_only=True) as session:
            await session.execute(select(1))

    # -- cache ---------------------------------------------------------------

    async def _read_through(
        self, kind: str, owner: int, task: str, read: Callable[[AsyncSession], Awaitable[T]]
    ) -> T:
        """A cached read, or `read` in a session and the answer cached for the TTL.

        Past `max_cached_owners` the least recently used owner is dropped, so a
        bot seen by millions keeps a bounded cache.
        """
        key = (kind, owner)
        hit = self._cache.get(key, {}).get(task)
        if hit is not None and hit[0] > self._clock():
            self._cache.move_to_end(key)
            return cast(T, hit[1])
        async with self._session(read_only=True) as session:
            value = await read(session)
        self._cache.setdefault(key, {})[task] = (self._clock() + self._ttl, value)
        self._cache.move_to_end(key)
        while len(self._cache) > self._max_owners:
            self._cache.popitem(last=False)
        return value

    def _forget(self, kind: str, owner: int, task: str | None = None) -> None:
        """Drop what a write changed: one owner's entry for one task, or all of theirs."""
        if task is None:
            self._cache.pop((kind, owner), None)
        else:
            self._cache.get((kind, owner), {}).pop(task, None)

    def _due(self, kind: str, ident: int) -> bool:
        """Whether a user or chat was last written long enough ago to write it again."""
        now = self._clock()
        last = self._touched.get((kind, ident))
        if last is not None and now - last < self._touch_interval:
            return False
        self._touched[(kind, ident)] = now
        self._touched.move_to_end((kind, ident))
        while len(self._touched) > self._max_owners:
            self._touched.popitem(last=False)
        return True

    # -- users and chats -----------------------------------------------------

    async def touch_user(self, user_id: int, telegram_language: str | None = None) -> None:
        """Record that a user was seen; written at most once per interval per user."""
        if not self._due("user", user_id):
            return
        async with self._session() as session:
            await user.touch_user(session, user_id, telegram_language)
        self._forget("lang", user_id)

    async def touch_chat(self, chat_id: int, chat_type: str, title: str | None = None) -> None:
        """Record that a chat was seen; written at most once per interval per chat."""
        if not self._due("chat", chat_id):
            return
        async with self._session() as session:
            await user.touch_chat(session, chat_id, chat_type, title)

    async def get_language(self, user_id: int) -> str | None:
        """The user's /lang choice, else the language Telegram reported, else None."""
        return await self._read_through(
            "lang", user_id, "", partial(user.read_language, user_id=user_id)
        )

    async def set_language(self, user_id: int, language: str | None) -> None:
        """Set (or with None, clear) the user's preferred reply language."""
        async with self._session() as session:
            await user.write_language(session, user_id, language)
        self._forget("lang", user_id)

    async def get_options(self, user_id: int) -> dict[str, Any]:
        """The user's stored options (only what they set; defaults live in the registry)."""
        return await self._read_through(
            "opts", user_id, "", partial(user.read_options, user_id=user_id)
        )

    async def set_options(self, user_id: int, options: Mapping[str, object]) -> dict[str, Any]:
        """Merge validated options; a None value removes that option. Returns what is stored."""
        clean = self._rules.validate_options({k: v for k, v in options.items() if v is not None})
        removed = [k for k, v in options.items() if v is None]
        async with self._session() as session:
            stored = await user.merge_options(session, user_id, clean, removed)
        self._forget("opts", user_id)
        return stored

    # -- per-task choices ----------------------------------------------------

    async def set_user_model(self, user_id: int, task: str, model_id: str | None) -> None:
        """Choose (or with None, forget) this user's model for a task."""
        await self._set_model(USER_SCOPE, user_id, task, model_id)

    async def set_user_params(
        self, user_id: int, task: str, params: Mapping[str, object]
    ) -> dict[str, Any]:
        """Merge validated parameters into this user's choice; a None value removes that key.

        Returns the parameters now stored. The row is locked for the merge so
        concurrent /set commands from one user never lose each other's values.
        """
        return await self._set_params(USER_SCOPE, user_id, task, params)

    async def reset_user(self, user_id: int, task: str | None = None) -> int:
        """Forget this user's choices for one task or all tasks; returns how many were removed."""
        return await self._reset(USER_SCOPE, user_id, task)

    async def set_chat_model(
        self, chat_id: int, task: str, model_id: str | None, *, by: int | None
    ) -> None:
        """Set a group's default model for a task (the caller checked the admin right)."""
        await self._set_model(CHAT_SCOPE, chat_id, task, model_id, updated_by=by)

    async def set_chat_params(
        self, chat_id: int, task: str, params: Mapping[str, object], *, by: int | None
    ) -> dict[str, Any]:
        """Merge validated parameters into a group's defaults; a None value removes that key."""
        return await self._set_params(CHAT_SCOPE, chat_id, task, params, updated_by=by)

    async def reset_chat(self, chat_id: int, task: str | None = None) -> int:
        """Forget a group's defaults for one task or all tasks."""
        return await self._reset(CHAT_SCOPE, chat_id, task)

    async def _set_model(
        self, scope: Scope, owner: int, task: str, model_id: str | None, **extra: Any
    ) -> None:
        self._validate(task, {})
        async with self._session() as session:
            row = await preference.locked_choice(session, scope, owner, task)
            row.model_id = model_id
            for name, value in extra.items():
                setattr(row, name, value)
        self._forget(scope.kind, owner, task)

    async def _set_params(
        self, scope: Scope, owner: int, task: str, params: Mapping[str, object], **extra: Any
    ) -> dict[str, Any]:
        clean = self._validate(task, {k: v for k, v in params.items() if v is not None})
        removed = [k for k, v in params.items() if v is None]
        async with self._session() as session:
            row = await preference.locked_choice(session, scope, owner, task)
            row.params = user.merged(row.params, clean, removed)
            for name, value in extra.items():
                setattr(row, name, value)
            stored = dict(row.params)
        self._forget(scope.kind, owner, task)
        return stored

    async def _reset(self, scope: Scope, owner: int, task: str | None) -> int:
        if task is not None:
            self._validate(task, {})
        async with self._session() as session:
            removed = await preference.delete_choices(session, scope, owner, task)
        self._forget(scope.kind, owner, task)
        return removed

    async def user_choice(self, user_id: int, task: str) -> Choice | None:
        return await self._choice(USER_SCOPE, user_id, task)

    async def chat_choice(self, chat_id: int, task: str) -> Choice | None:
        return await self._choice(CHAT_SCOPE, chat_id, task)

    async def _choice(self, scope: Scope, owner: int, task: str) -> Choice | None:
        read = partial(preference.read_choice, scope=scope, owner=owner, task=task)
        return await self._read_through(scope.kind, owner, task, read)

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
        charged: bool | None = None,
    ) -> None:
        """Log one request; one `charged` (by default: answered) also counts at once in the
        cached quota counts.

        It also releases the hold (`hold_served`) this task took, if any,
        whether or not the row can be written: the request is over either way.
        """
        created_at = utcnow()
        try:
            async with self._session() as session:
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
            counted = usage.counted_as(user_id, chat_id)
            if (ok if charged is None else charged) and counted is not None:
                self._count_served(counted, chat_id, created_at)
        finally:
            # Only now: until the row is in (and counted), the hold is what counts it.
            self._release(_HOLD.get())

    def hold_served(self, counted: int, chat_id: int | None, *, for_s: float) -> None:
        """Count a request that passed a quota check until this task logs its usage.

        `counted` is the quota it counts against (`models.usage.counted_as`).

        Without it, a person's next request could pass while the last one still
        runs (or is answered but not yet logged) and overshoot the quota. The
        hold belongs to the asyncio task handling the request (a context
        variable), so the `log_usage` of that same request releases exactly it;
        one never released (a crash skips the log) lapses after `for_s`.
        """
        hold = _Hold(counted, chat_id, self._clock() + for_s)
        self._held.setdefault(counted, []).append(hold)
        _HOLD.set(hold)

    def _release(self, hold: _Hold | None) -> None:
        if hold is None:
            return
        _HOLD.set(None)
        held = self._held.get(hold.user_id, [])
        if hold in held:
            held.remove(hold)
        if not held:
            self._held.pop(hold.user_id, None)

    def _holds(self, user_id: int, chat_id: int | None) -> int:
        now = self._clock()
        live = [hold for hold in self._held.get(user_id, []) if hold.expires > now]
        if live:
            self._held[user_id] = live
        else:
            self._held.pop(user_id, None)
        return sum(1 for hold in live if chat_id is None or hold.chat_id == chat_id)

    async def served_since(
        self, counted: int, since: datetime, *, chat_id: int | None = None
    ) -> int:
        """Requests answered against one quota since a moment (in one chat, if given), and held
        ones. `counted` is a person, or everything sent as a chat in one chat (see
        `models.usage.counted_as`).

        What daily quotas count: rows of the usage log with ok=True, plus the
        requests that passed a quota check and are not logged yet
        (`hold_served`). Asked before every model command, so the count of rows
        is cached per (quota, chat) for the cache TTL: each answered request
        this process logs adds one to the cached counts at once, and the TTL
        bounds how long rows written by another process go unseen. A read that
        a log write overtook is returned but not cached, since it may or may
        not include that row.
        """
        return await self._served_rows(counted, since, chat_id) + self._holds(counted, chat_id)

    async def _served_rows(self, user_id: int, since: datetime, chat_id: int | None) -> int:
        key = (user_id, chat_id)
        hit = self._served.get(key)
        if hit is not None and hit.since == since and hit.expires > self._clock():
            self._served.move_to_end(key)
            return hit.count
        self._served_reads[key] = False
        try:
            async with self._session(read_only=True) as session:
                count = await usage.count_served(session, user_id, since, chat_id=chat_id)
        finally:
            overtaken = self._served_reads.pop(key, True)
        if not overtaken:
            self._served[key] = _ServedCount(since, self._clock() + self._ttl, count)
            self._served.move_to_end(key)
            while len(self._served) > self._max_owners:
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
        async with self._session(read_only=True) as session:
            return await usage.count_requests(session, user_id, since)

    async def latest_task(self, user_id: int, chat_id: int, tasks: Sequence[str]) -> str | None:
        """Which of `tasks` this person asked for last in this chat (from the usage log)."""
        async with self._session(read_only=True) as session:
            return await usage.latest_task(session, user_id, chat_id, tasks)

    async def usage_series(
        self, since: datetime, until: datetime, step: timedelta, *, chat_id: int | None = None
    ) -> UsageSeries:
        """Requests, errors, latency and active users per time bucket (the /stats chart)."""
        async with self._session(read_only=True) as session:
            return await usage.usage_series(session, since, until, step, chat_id=chat_id)

    # -- who may use the bot ---------------------------------------------------

    async def access_decision(self, subject_id: int) -> bool | None:
        """An admin's grant (True) or revocation (False) of a person or chat; None: neither."""
        return await self._read_through(
            "access", subject_id, "", partial(access.read_decision, subject_id=subject_id)
        )

    async def access_restricted(self) -> bool:
        """Whether any grant, revocation or invite code exists (then the bot is private).

        The last answer is kept in `restricted_last_seen`, so a private bot stays
        private while the database cannot be reached.
        """
        found = await self._read_through("access_any", 0, "", access.any_restriction)
        self.restricted_last_seen = found
        return found

    async def set_access(self, subject_id: int, allowed: bool, *, by: int | None) -> None:
        """Grant or revoke a person (positive id) or a group or channel (negative id)."""
        async with self._session() as session:
            await access.write_decision(session, subject_id, allowed, by)
        self._forget("access", subject_id)
        self._forget("access_any", 0)
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
        async with self._session() as session:
            invite = await access.create_invite(
                session, code, max_uses, expires_at, by, requested_in
            )
        self._forget("access_any", 0)
        self.restricted_last_seen = True
        return invite

    async def redeem_invite(self, code: str, user_id: int) -> bool:
        """Take one use of the code and grant the person; False when it is used up or expired,
        or the person was revoked. A person already granted takes no use and gets True."""
        async with self._session() as session:
            redeemed = await access.redeem_invite(session, code, user_id)
        self._forget("access", user_id)
        return redeemed

    async def get_invite(self, code: str) -> Invite | None:
        async with self._session(read_only=True) as session:
            return await access.read_invite(session, code)

    # -- conversations -----------------------------------------------------------

    async def system_prompt(self, user_id: int) -> str | None:
        """This person's own system prompt (`/system`), if they set one."""
        read = partial(user.read_system_prompt, user_id=user_id)
        return await self._read_through("system", user_id, "", read)

    async def group_setup(self, chat_id: int) -> GroupSetup:
        """A group's system prompt and whether it shares one conversation."""
        read = partial(user.read_group_setup, chat_id=chat_id)
        return await self._read_through("group", chat_id, "", read)

    async def ongoing_conversation(
        self,
        chat_id: int,
        user_id: int | None,
        *,
        replied_message_id: int | None = None,
        max_turns: int = 200,
    ) -> OngoingConversation:
        """The conversation a message continues (started if there is none), with its turns."""
        async with self._session() as session:
            return await conversation.ongoing(
                session,
                chat_id,
                user_id,
                replied_message_id=replied_message_id,
                max_turns=max_turns,
            )

    async def is_chat_answer(self, chat_id: int, telegram_message_id: int) -> bool:
        """Whether a message of the bot's answered a conversation, so a reply to it continues one."""
        async with self._session(read_only=True) as session:
            found = await conversation.answered_in(session, chat_id, telegram_message_id)
        return found is not None

    async def add_conversation_turn(
        self,
        conversation_id: int,
        *,
        question: str,
        question_message_id: int | None,
        answer: str,
        answer_message_id: int | None,
        author_id: int,
        stopped: bool = False,
        trim_noticed: bool = False,
    ) -> None:
        """A person's message and the answer they saw, committed together."""
        async with self._session() as session:
            await conversation.add_turn(
                session,
                conversation_id,
                question=question,
                question_message_id=question_message_id,
                answer=answer,
                answer_message_id=answer_message_id,
                author_id=author_id,
                stopped=stopped,
                trim_noticed=trim_noticed,
            )

    async def new_conversation(self, chat_id: int, user_id: int | None) -> None:
        async with self._session() as session:
            await conversation.start(session, chat_id, user_id)

    async def forget_conversations(self, user_id: int) -> int:
        """Delete this person's stored history; returns how many messages went."""
        async with self._session() as session:
            return await conversation.forget(session, user_id)

    async def prune_conversations(self, before: datetime) -> int:
        async with self._session() as session:
            return await conversation.prune(session, before)

    async def set_system_prompt(self, user_id: int, prompt: str | None) -> None:
        async with self._session() as session:
            await user.write_system_prompt(session, User, user_id, prompt)
        self._forget("system", user_id)

    async def set_chat_system_prompt(self, chat_id: int, prompt: str | None) -> None:
        async with self._session() as session:
            await user.write_system_prompt(session, Chat, chat_id, prompt)
        self._forget("group", chat_id)

    async def group_quota(self, chat_id: int) -> int | None:
        """The daily quota per member a group's admins set (`/groupquota`); None: none."""
        read = partial(user.read_group_quota, chat_id=chat_id)
        return await self._read_through("quota", chat_id, "", read)

    async def set_group_quota(self, chat_id: int, quota: int | None) -> None:
        async with self._session() as session:
            await user.write_group_quota(session, chat_id, quota)
        self._forget("quota", chat_id)

    async def set_shared_conversation(self, chat_id: int, shared: bool) -> None:
        async with self._session() as session:
            await user.write_shared_conversation(session, chat_id, shared)
        self._forget("group", chat_id)

    # -- the inbox (updates accepted, not yet answered) --------------------------

    async def inbox_accept(
        self, bot_id: int, update_id: int, chat_id: int | None, payload: dict[str, Any]
    ) -> bool:
        """Record an update before Telegram is told it arrived; False if it was recorded before."""
        async with self._session() as session:
            return await inbox.accept(session, bot_id, update_id, chat_id, payload)

    async def inbox_done(self, bot_id: int, update_ids: Collection[int]) -> None:
        async with self._session() as session:
            await inbox.mark_done(session, bot_id, update_ids)

    async def inbox_unanswered(
        self, bot_id: int, since: datetime, *, max_replays: int = 1
    ) -> list[Unanswered]:
        """Updates to handle again after a restart, in arrival order, each counted as replayed."""
        async with self._session() as session:
            return await inbox.take_unanswered(session, bot_id, since, max_replays)

    async def inbox_prune(self, bot_id: int, before: datetime) -> tuple[int, int]:
        async with self._session() as session:
            return await inbox.prune(session, bot_id, before)

    # -- model rules -----------------------------------------------------------

    async def list_model_rules(self) -> list[ModelRule]:
        async with self._session(read_only=True) as session:
            return await rule.list_rules(session)

    async def set_model_rule(self, model_id: str, kind: RuleKind, added_by: int | None) -> None:
        if kind not in ("allow", "deny"):
            raise ValueError(f"unknown rule {kind!r}")
        async with self._session() as session:
            await rule.write_rule(session, model_id, kind, added_by)

    async def remove_model_rule(self, model_id: str) -> bool:
        async with self._session() as session:
            return await rule.delete_rule(session, model_id)


@dataclass(eq=False)
class _Hold:
    """A request counted against its person's quota until it is logged (compared by identity)."""

    user_id: int
    chat_id: int | None
    expires: float


# The hold the request handled by the current asyncio task took (see `hold_served`).
_HOLD: ContextVar[_Hold | None] = ContextVar("hfbot_quota_hold", default=None)


@dataclass
class _ServedCount:
    """A cached count of answered requests since `since`, good until `expires` (the store's clock)."""

    since: datetime
    expires: float
    count: int


def _still_valid(
    validate: Callable[[str, Mapping[str, object]], Any], task: str, name: str, value: Any
) -> bool:
    try:
        validate(task, {name: value})
    except UserFacingError:
        return False
    return True
